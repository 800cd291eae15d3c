/**
 * Recorded HTTP/2 sessions (test/wire/sessions/*.json): what a real server
 * sent to the wire engine in a few realistic exchanges, byte for byte, and
 * the requests that made it send that. test/wire/fuzz.test.ts replays them,
 * mutated; test/wire/sessions/record.ts records them anew.
 *
 * The server's bytes are kept gzipped (bodies are patterns, so they shrink
 * to almost nothing) with a one-line summary per frame for reviewers.
 */
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { gunzipSync } from 'node:zlib'
import type { ResponseHeaders, StreamClosed } from '../../lib/engine.js'
import { FrameType } from '../../lib/wire/frame.js'
import { pattern } from '../helpers/h2-server.js'
import type { Recorder } from './harness.js'

/** One request of a session, made in order, all at once after the connection is up. */
export interface SessionRequest {
  method: string
  path: string
  headers?: Record<string, string>
  /** Body size: that many octets of h2-server.ts's `pattern`. */
  body?: number
}

/**
 * How a stream ended, as the fuzzer compares it: the final status (0 when
 * none arrived), then the response (body as length and hash) or why it
 * closed. What arrived of a body before a close is left out: a paused
 * stream drops it, a flowing one has delivered it.
 */
export type Outcome =
  | { status: number; headers: ResponseHeaders; body: string; trailers: ResponseHeaders }
  | { status: number; closed: { code: number | undefined; by: StreamClosed['by']; error: string | undefined; lost: string | undefined; unprocessed: boolean } }

export interface Session {
  name: string
  /** Which server, and how it was run. */
  server: string
  requests: SessionRequest[]
  /** The client sent one PING (sequence 1) right after opening its streams. */
  ping: boolean
  /** Each request's outcome when it was recorded, by request. */
  outcomes: Outcome[]
  /** One line per frame the server sent, for reading; the bytes are what counts. */
  frames: string[]
  /** The server's bytes, gzipped, base64. */
  bytes: string
}

/** A loaded session: its server's bytes cut into frames. */
export interface LoadedSession extends Omit<Session, 'bytes'> {
  frames: string[]
  bytes: Buffer
  /** The bytes cut at frame boundaries (a trailing partial frame, if any, is the last). */
  frameBytes: Buffer[]
}

const directory = new URL('./sessions/', import.meta.url)

export function loadSessions(): LoadedSession[] {
  return readdirSync(directory)
    .filter((name) => name.endsWith('.json'))
    .sort()
    .map((name) => {
      const session = JSON.parse(readFileSync(new URL(name, directory), 'utf8')) as Session
      const bytes = gunzipSync(Buffer.from(session.bytes, 'base64'))
      return { ...session, bytes, frameBytes: splitFrames(bytes) }
    })
}

/** Cuts bytes at frame boundaries (RFC 9113 §4.1: a 24-bit length, then 6 more octets of header). */
export function splitFrames(bytes: Buffer): Buffer[] {
  const frames: Buffer[] = []
  let offset = 0
  while (offset < bytes.length) {
    const end = bytes.length - offset >= 9 ? Math.min(bytes.length, offset + 9 + bytes.readUIntBE(offset, 3)) : bytes.length
    frames.push(bytes.subarray(offset, end))
    offset = end
  }
  return frames
}

const typeNames = Object.fromEntries(Object.entries(FrameType).map(([name, type]) => [type, name]))

/** `HEADERS 3 flags=0x4 112` */
export function describeFrame(frame: Buffer): string {
  if (frame.length < 9) return `partial frame header of ${frame.length} octets`
  const type = frame[3]!
  return `${typeNames[type] ?? `type 0x${type.toString(16)}`} ${frame.readUInt32BE(5) & 0x7fffffff} flags=0x${frame[4]!.toString(16)} ${frame.readUIntBE(0, 3)}`
}

export function requestBody(request: SessionRequest): Buffer | undefined {
  return request.body === undefined ? undefined : pattern(request.body)
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')

/** What a finished stream amounts to: the response (body as length and hash), or why it closed. */
export function outcomeOf(recorder: Recorder): Outcome {
  const closed = recorder.closedWith
  if (closed !== undefined) {
    return {
      status: recorder.status,
      closed: {
        code: closed.code,
        by: closed.by,
        error: closed.error?.constructor.name,
        lost: closed.lost?.constructor.name,
        unprocessed: closed.unprocessed,
      },
    }
  }
  const body = recorder.body()
  return { status: recorder.status, headers: { ...recorder.headers }, body: `${body.length} ${sha256(body)}`, trailers: { ...recorder.trailers } }
}

/**
 * What the conformance and limit tests share: a raw-frame server
 * (test/hostile/server.ts) with the wire engine connected to it, and the
 * three outcomes RFC 9113 asks of a client, each checked on the wire:
 * a connection error (our GOAWAY with the code, last-stream-id 0, the
 * socket closed), a stream error (our RST_STREAM with the code, the
 * connection going on), or a frame ignored (nothing sent back, the
 * connection going on).
 */
import { expect } from 'vitest'
import { ProtocolError } from '../../lib/errors.js'
import type { WireConnection } from '../../lib/wire/connection.js'
import { FrameType, response, startHostileServer, type Frame, type HostileConnection, type HostileServer, type Script } from '../hostile/server.js'
import { connect, request, type ConnectOptions, type ListenerLog, type Recorder, type RequestOptions } from './harness.js'

export const HOST = '127.0.0.1'

export interface Peer {
  server: HostileServer
  /** The server's side of the one connection. */
  c: HostileConnection
  connection: WireConnection
  log: ListenerLog
}

export interface PeerOptions {
  /** The server's SETTINGS (default: empty); false sends none. */
  settings?: [number, number][] | false
  /** Runs on the server's connection before it reads anything. */
  script?: Script
  connect?: ConnectOptions
}

/** A raw-frame server and the wire engine connected to it; `cleanup` gets what undoes both. */
export async function peer(cleanup: (() => unknown)[], options: PeerOptions = {}): Promise<Peer> {
  const server = await startHostileServer({ host: HOST, settings: options.settings, script: options.script ?? (() => {}) })
  cleanup.push(() => server.close())
  const { connection, log } = await connect(HOST, server.port, options.connect)
  cleanup.push(() => connection.destroy())
  const c = await server.connection(1)
  return { server, c, connection, log }
}

/** Opens a request and resolves once its HEADERS reached the server. */
export async function opened(p: Peer, path = '/x', options: RequestOptions = {}): Promise<Recorder> {
  const recorder = request(p.connection, path, options)
  await headersOf(p.c, recorder.stream.id)
  return recorder
}

export function headersOf(c: HostileConnection, streamId: number): Promise<Frame> {
  return c.frame((frame) => frame.type === FrameType.HEADERS && frame.streamId === streamId)
}

export interface SentGoaway {
  lastStreamId: number
  code: number
  debug: string
}

/** Our GOAWAY, once it arrives. */
export async function ourGoaway(c: HostileConnection): Promise<SentGoaway> {
  const frame = await c.frame((f) => f.type === FrameType.GOAWAY)
  return { lastStreamId: frame.payload.readUInt32BE(0) & 0x7fffffff, code: frame.payload.readUInt32BE(4), debug: frame.payload.subarray(8).toString() }
}

/** The code of our RST_STREAM on `streamId`, once it arrives. */
export async function ourReset(c: HostileConnection, streamId: number): Promise<number> {
  const frame = await c.frame((f) => f.type === FrameType.RST_STREAM && f.streamId === streamId)
  return frame.payload.readUInt32BE(0)
}

/**
 * A connection error with `code` (RFC 9113 §5.4.1): our GOAWAY carries it
 * with last-stream-id 0, the listener hears a ProtocolError with it, then
 * `closed`, and the socket is gone. Returns the reported error.
 */
export async function connectionError(p: Peer, code: number): Promise<ProtocolError> {
  const goaway = await ourGoaway(p.c)
  expect(goaway).toMatchObject({ code, lastStreamId: 0 })
  const error = await p.log.whenError()
  expect(error).toBeInstanceOf(ProtocolError)
  expect((error as ProtocolError).http2Code).toBe(code)
  await p.log.whenClosed()
  await p.c.whenClosed()
  expect(p.connection.accepting).toBe(false)
  return error as ProtocolError
}

/** One more request, served well: the connection still works. */
export async function goesOn(p: Peer): Promise<void> {
  const next = await opened(p, '/next')
  p.c.write(response(next.stream.id, 200, 'ok'))
  await next.settled
  expect(next.body().toString()).toBe('ok')
  expect(p.log.errors).toEqual([])
}

/**
 * A stream error with `code` (RFC 9113 §5.4.2): our RST_STREAM carries it,
 * the handler hears `closed` by us with a ProtocolError, and the connection
 * goes on. Returns the error the handler got.
 */
export async function streamError(p: Peer, recorder: Recorder, code: number): Promise<ProtocolError> {
  expect(await ourReset(p.c, recorder.stream.id)).toBe(code)
  await recorder.settled
  expect(recorder.closedWith).toMatchObject({ code, by: 'local', lost: undefined, unprocessed: false })
  expect(recorder.closedWith!.error).toBeInstanceOf(ProtocolError)
  expect(recorder.calls).not.toContain('end')
  await goesOn(p)
  return recorder.closedWith!.error as ProtocolError
}

/** The frame was ignored: the connection goes on and we sent no RST_STREAM or GOAWAY for it. */
export async function ignored(p: Peer): Promise<void> {
  await goesOn(p)
  expect(p.c.received.filter((f) => f.type === FrameType.RST_STREAM || f.type === FrameType.GOAWAY)).toEqual([])
}

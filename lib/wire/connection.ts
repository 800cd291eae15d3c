/**
 * drainpipe's own HTTP/2 client connection (RFC 9113) over a net/tls
 * socket: the `Connection` of lib/engine.ts, and `wireEngine`.
 *
 * One 'data' listener feeds the frame reader, which hands each frame to
 * the dispatch (dispatch.ts): what it does to a stream or to the
 * connection is decided there and reported synchronously. The other parts,
 * one concept each: our and the server's SETTINGS (settings.ts), receive
 * windows (receive-flow.ts), sending within the server's windows in one
 * socket write per turn (send.ts), and how the connection ends: close,
 * GOAWAY both ways, connection errors, the socket going (shutdown.ts).
 * This file opens streams, answers the Connection API and wires the parts
 * together; the parts reach each other through the connection's shared
 * members below.
 */
import type { Socket } from 'node:net'
import type { Clock } from '../clock.js'
import { dialSocket } from '../dial.js'
import type { Connection, ConnectionListener, ConnectTarget, Engine, RequestHead, StreamHandler } from '../engine.js'
import { ConnectError, ConnectionLostError, InvalidHeaderError, type ProtocolError, ReadOnlyError } from '../errors.js'
import { FrameDispatch } from './dispatch.js'
import { checkRequestHead } from './fields.js'
import { MAX_STREAM_ID } from './frame.js'
import { FrameReader } from './frame-reader.js'
import { HpackEncoder } from './hpack.js'
import { MAX_FIELD_BLOCK_EXCESS, MAX_FRAME_SIZE } from './limits.js'
import { ReceiveFlow } from './receive-flow.js'
import { Sender } from './send.js'
import { HEADER_TABLE_SIZE, Settings } from './settings.js'
import { Shutdown } from './shutdown.js'
import { WireStream, type StreamOwner } from './stream.js'
import { StreamTable } from './stream-table.js'

/** What the connection counted; tests and diagnostics read it. */
export interface WireCounters {
  /** SETTINGS frames received (ACKs not included). */
  settings: number
  /** PINGs received that asked for an ACK. */
  pings: number
  /** RST_STREAM frames received. */
  resets: number
  goaways: number
  /** Frames that did nothing for an open stream (see MAX_STRAY_FRAMES_PER_WINDOW). */
  strayFrames: number
  /** DATA frames without content or END_STREAM. */
  emptyData: number
  /** RST_STREAM frames we sent because the server broke a rule (stream errors). */
  streamErrors: number
  windowUpdatesSent: number
}

/** Test hooks that are no option of the public API. */
export interface WireInternals {
  /** The first stream id to use (odd): tests of stream-id exhaustion start near 2^31-1. */
  firstStreamId?: number
}

export const wireEngine: Engine = {
  name: 'wire',
  connect: (target, signal) => connectWire(target, signal),
}

/**
 * Dials (Happy Eyeballs, TLS with ALPN h2 or h2c), sends our preface and
 * resolves once the server's first SETTINGS arrived. Rejects with
 * `ConnectError` (its cause the protocol error, if one ended it), or the
 * signal's reason; the socket is destroyed then.
 */
export async function connectWire(target: ConnectTarget, signal: AbortSignal, internals: WireInternals = {}): Promise<WireConnection> {
  const { socket, address } = await dialSocket(target, signal)
  return handshakeOver(socket, address, target, signal, internals)
}

/**
 * connectWire once the socket is there: our preface, then the server's
 * first SETTINGS. Apart so that tests can run the engine over a socket of
 * their own making (the fuzzer feeds it recorded bytes in chunks it chooses).
 */
export function handshakeOver(socket: Socket, address: string, target: ConnectTarget, signal: AbortSignal, internals: WireInternals = {}): Promise<WireConnection> {
  return new Promise<WireConnection>((resolve, reject) => {
    const onAbort = () => {
      reject(signal.reason as Error)
      connection.destroy(signal.reason as Error)
    }
    const connection = new WireConnection(socket, address, target, internals, (error) => {
      signal.removeEventListener('abort', onAbort)
      if (error === undefined) resolve(connection)
      else reject(new ConnectError(`HTTP/2 with ${target.origin} at ${address} failed: ${error.message}`, { cause: error }))
    })
    if (signal.aborted) onAbort()
    else signal.addEventListener('abort', onAbort, { once: true })
  })
}

export class WireConnection implements Connection, StreamOwner {
  readonly address: string
  readonly counters: WireCounters = {
    settings: 0,
    pings: 0,
    resets: 0,
    goaways: 0,
    strayFrames: 0,
    emptyData: 0,
    streamErrors: 0,
    windowUpdatesSent: 0,
  }
  /** When bytes last arrived, on the target's clock: read once per socket read (liveness wants it, not a per-frame cost). */
  lastReceivedAt: number

  // ── Shared by the parts of the connection (this folder); not API ─────────
  readonly socket: Socket
  readonly clock: Clock
  readonly origin: string
  /** Streams opened and not yet closed on both sides, by id. */
  readonly streams = new StreamTable()
  readonly send: Sender
  readonly receive: ReceiveFlow
  readonly settings: Settings
  readonly shutdown: Shutdown
  readonly reader: FrameReader
  listener: ConnectionListener | undefined
  /** Called once: the handshake ended, with the error that ended it if it failed. */
  handshake: ((error?: Error) => void) | undefined
  /** Our PINGs awaiting their ACK, by sequence number. */
  readonly pings = new Map<number, (error?: Error) => void>()
  nextStreamId: number

  readonly #encoder = new HpackEncoder(HEADER_TABLE_SIZE)
  readonly #dispatch: FrameDispatch
  #pingSequence = 0

  constructor(socket: Socket, address: string, target: ConnectTarget, internals: WireInternals, handshake: (error?: Error) => void) {
    this.socket = socket
    this.address = address
    this.clock = target.clock
    this.lastReceivedAt = target.clock.now()
    this.origin = target.origin
    this.handshake = handshake
    this.nextStreamId = internals.firstStreamId ?? 1
    const local = target.settings
    const send = (this.send = new Sender(socket, this))
    this.receive = new ReceiveFlow(local, send, this.counters)
    this.settings = new Settings(this, send, this.#encoder, this.clock, this.counters)
    const shutdown = (this.shutdown = new Shutdown(this))
    this.#dispatch = new FrameDispatch(this, local.maxHeaderListSize, local.maxHeaderFields)
    this.reader = new FrameReader(this.#dispatch, MAX_FRAME_SIZE, local.maxHeaderListSize + MAX_FIELD_BLOCK_EXCESS)

    socket.on('data', this.#onData)
    socket.on('end', shutdown.onEnd)
    socket.on('error', shutdown.onError)
    socket.on('close', shutdown.onClose)
    socket.on('drain', send.drained)

    send.writer.preface()
    this.settings.announce(local)
    this.receive.announce()
    send.flush()
  }

  // ── Connection ───────────────────────────────────────────────────────────

  get maxConcurrentStreams(): number {
    return this.settings.maxConcurrentStreams
  }

  get activeStreams(): number {
    return this.streams.size
  }

  get accepting(): boolean {
    const shutdown = this.shutdown
    return !shutdown.failed && !shutdown.closing && shutdown.goaway === undefined && this.nextStreamId <= MAX_STREAM_ID
  }

  /** Frames read so far. */
  get framesReceived(): number {
    return this.reader.frames
  }

  listen(listener: ConnectionListener): void {
    this.listener = listener
    // Frames after the server's first SETTINGS were held until someone listens.
    process.nextTick(this.#resumeReading)
    if (this.shutdown.failure !== undefined) listener.error(this.shutdown.failure)
    if (this.shutdown.socketClosed) listener.closed()
  }

  open(head: RequestHead, endStream: boolean, handler: StreamHandler): WireStream {
    if (!this.accepting) throw new ReadOnlyError(`The connection to ${this.origin} takes no new stream (${this.shutdown.whyNotAccepting()}); the request was not sent`)
    const settings = this.settings
    if (this.streams.size >= settings.maxConcurrentStreams) {
      throw new ReadOnlyError(`The connection to ${this.origin} has no free stream: the server allows ${settings.maxConcurrentStreams} at once; the request was not sent`)
    }
    const size = checkRequestHead(head)
    if (size > settings.maxHeaderListSize) {
      throw new InvalidHeaderError('(header list)', `its size ${size} exceeds the server's SETTINGS_MAX_HEADER_LIST_SIZE ${settings.maxHeaderListSize}`)
    }
    const encoder = this.#encoder
    encoder.start()
    encoder.field(':method', head.method)
    encoder.field(':scheme', head.scheme)
    encoder.field(':authority', head.authority)
    encoder.field(':path', head.path)
    const headers = head.headers
    for (const name in headers) {
      const value = headers[name]!
      if (typeof value === 'string') encoder.field(name, value)
      else for (const item of value) encoder.field(name, item)
    }
    const id = this.nextStreamId
    this.nextStreamId += 2
    const send = this.send
    send.writer.headers(id, encoder.finish(), endStream, send.maxFrameSize)
    const recvWindow = this.receive.newStreamWindow(settings.acked)
    const stream = new WireStream(this, id, handler, settings.initialWindow, recvWindow, head.method === 'HEAD', endStream, send.generation)
    this.streams.add(stream)
    send.schedule()
    return stream
  }

  ping(acked: (error?: Error) => void): void {
    if (this.shutdown.failed || !this.send.writable) {
      process.nextTick(acked, new ConnectionLostError(`The connection to ${this.origin} is gone: the PING cannot be answered`))
      return
    }
    const sequence = ++this.#pingSequence
    const payload = Buffer.alloc(8)
    payload.writeUInt32BE(sequence, 4)
    this.pings.set(sequence, acked)
    this.send.writer.ping(payload, false)
    this.send.schedule()
  }

  close(): void {
    this.shutdown.close()
  }

  destroy(error?: Error): void {
    this.shutdown.destroy(error)
  }

  // ── Stream owner ─────────────────────────────────────────────────────────

  wantSend(stream: WireStream): void {
    this.send.want(stream)
  }

  resetStream(stream: WireStream, code: number): void {
    this.#dispatch.reset(stream, code)
  }

  release(stream: WireStream): void {
    process.nextTick(this.#dispatch.deliverHeld, stream)
  }

  // ── Shared ───────────────────────────────────────────────────────────────

  /** The stream is done on both sides (or gone): out of the table, its slot free. */
  remove(stream: WireStream): void {
    stream.open = false
    this.streams.delete(stream)
    this.send.forget(stream)
    // Not from here: a stream may end in the middle of a flush.
    if (this.shutdown.closing && this.streams.size === 0) process.nextTick(this.shutdown.endWhenIdle)
  }

  /** A handler threw while the connection called it. */
  fault(error: unknown): void {
    this.shutdown.fault(error)
  }

  connectionError(error: ProtocolError): void {
    this.shutdown.connectionError(error)
  }

  // ── Reading ──────────────────────────────────────────────────────────────

  readonly #onData = (chunk: Buffer): void => {
    if (this.shutdown.failed) return
    this.lastReceivedAt = this.clock.now()
    const send = this.send
    send.batching = true
    try {
      this.reader.push(chunk)
    } catch (error) {
      this.shutdown.fault(error)
    }
    send.batching = false
    send.flush()
  }

  readonly #resumeReading = (): void => {
    if (this.shutdown.failed) return
    this.socket.resume()
    const send = this.send
    send.batching = true
    try {
      this.reader.resume()
    } catch (error) {
      this.shutdown.fault(error)
    }
    send.batching = false
    send.flush()
  }
}

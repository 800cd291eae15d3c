/**
 * drainpipe's own HTTP/2 client connection (RFC 9113) over a net/tls
 * socket: the `Connection` of lib/engine.ts, and `wireEngine`.
 *
 * One 'data' listener feeds the frame reader, which calls back here per
 * frame; what a frame does to a stream is decided here and reported to the
 * stream's handler synchronously. Frames we send are queued in the writer
 * and leave in one socket write per turn: at the end of a read, or on the
 * next tick when the exchange wrote.
 *
 * Errors follow RFC 9113 §5.4: a stream error resets one stream (our
 * RST_STREAM; the handler hears `closed` with `by: 'local'`), a connection
 * error sends GOAWAY with the code and last-stream-id 0 (we accept no
 * server streams), reports `error`, fails the open streams and closes the
 * socket.
 */
import type { Socket } from 'node:net'
import type { Clock, TimerHandle } from '../clock.js'
import { dialSocket } from '../dial.js'
import {
  Http2ErrorCode,
  errorCodeName,
  type Connection,
  type ConnectionListener,
  type ConnectTarget,
  type Engine,
  type Goaway,
  type RequestHead,
  type ResponseHeaders,
  type StreamHandler,
} from '../engine.js'
import { ConnectError, ConnectionLostError, InvalidHeaderError, PeerLimitError, ProtocolError, ReadOnlyError, shown } from '../errors.js'
import { checkRequestHead, ResponseFields } from './fields.js'
import {
  connectionError,
  DEFAULT_WINDOW,
  FrameReader,
  FrameWriter,
  MAX_MAX_FRAME_SIZE,
  MAX_STREAM_ID,
  MAX_WINDOW,
  MIN_MAX_FRAME_SIZE,
  Setting,
  type FrameHandler,
} from './frame.js'
import { HpackDecoder, HpackEncoder } from './hpack.js'
import {
  CLOSE_FLUSH_TIMEOUT,
  DATA_PER_WRITE,
  MAX_EMPTY_DATA_IN_A_ROW,
  MAX_FIELD_BLOCK_EXCESS,
  MAX_FRAME_SIZE,
  MAX_PINGS_PER_WINDOW,
  MAX_SETTINGS_ENTRIES,
  MAX_SETTINGS_PER_WINDOW,
  MAX_STRAY_FRAMES_PER_WINDOW,
  PING_WINDOW,
  RateLimit,
  RECENT_RESETS,
  SETTINGS_ACK_TIMEOUT,
  SETTINGS_WINDOW,
  STRAY_FRAMES_WINDOW,
  WRITE_HIGH_WATER,
} from './limits.js'
import { WireStream, type StreamOwner } from './stream.js'

/** The HPACK dynamic table size we decode with (announced) and at most encode with. */
const HEADER_TABLE_SIZE = 4_096
/** Server-initiated streams we would allow: none can come (push is off), 100 as curl and nghttp2 announce. */
const ANNOUNCED_MAX_CONCURRENT_STREAMS = 100

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

/** Ids of streams we reset lately: the frames the server sent before it saw our RST_STREAM are expected, and ignored. */
class RecentResets {
  readonly #ids = new Int32Array(RECENT_RESETS)
  #next = 0

  add(id: number): void {
    this.#ids[this.#next] = id
    this.#next = (this.#next + 1) % RECENT_RESETS
  }

  has(id: number): boolean {
    return this.#ids.includes(id)
  }
}

const EMPTY = Buffer.alloc(0)

export class WireConnection implements Connection, FrameHandler, StreamOwner {
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

  readonly #socket: Socket
  readonly #clock: Clock
  readonly #origin: string
  readonly #reader: FrameReader
  readonly #writer = new FrameWriter()
  readonly #encoder = new HpackEncoder(HEADER_TABLE_SIZE)
  readonly #decoder = new HpackDecoder(HEADER_TABLE_SIZE)
  readonly #fields: ResponseFields
  readonly #streams = new Map<number, WireStream>()
  readonly #recentResets = new RecentResets()
  #listener: ConnectionListener | undefined
  /** Called once: the handshake ended, with the error that ended it if it failed. */
  #handshake: ((error?: Error) => void) | undefined

  // Our settings (what the server must respect).
  readonly #streamWindow: number
  readonly #connectionWindow: number
  #settingsAcked = false
  #settingsTimer: TimerHandle | undefined

  // The server's settings (what we respect).
  #maxConcurrentStreams = Number.POSITIVE_INFINITY
  #peerInitialWindow = DEFAULT_WINDOW
  #peerMaxFrameSize = MIN_MAX_FRAME_SIZE
  #peerMaxHeaderListSize = Number.POSITIVE_INFINITY

  // Flow control (RFC 9113 §6.9).
  #sendWindow = DEFAULT_WINDOW
  #recvWindow: number
  #recvUnacked = 0
  /** Streams with body bytes or their end to send, in turn. */
  readonly #sendable = new Set<WireStream>()

  #nextStreamId: number
  #goaway: Goaway | undefined
  #closing = false
  /** A connection error or loss happened: nothing more is read, streams are gone. */
  #failed = false
  /** The error reported to the listener, if any (kept to replay to a late `listen`). */
  #failure: Error | undefined
  #socketError: Error | undefined
  #socketClosed = false
  /** We may still write to the socket (not ended, not destroyed, no EOF). */
  #writable = true
  #socketBlocked = false
  #reading = false
  #flushScheduled = false
  /** Socket writes so far: a stream whose HEADERS were queued at the current count never left. */
  #generation = 0

  #pingSequence = 0
  readonly #pings = new Map<number, (error?: Error) => void>()
  #emptyDataInARow = 0
  readonly #settingsRate: RateLimit
  readonly #pingRate: RateLimit
  readonly #strayRate: RateLimit

  constructor(socket: Socket, address: string, target: ConnectTarget, internals: WireInternals, handshake: (error?: Error) => void) {
    this.#socket = socket
    this.address = address
    this.#clock = target.clock
    this.lastReceivedAt = target.clock.now()
    this.#origin = target.origin
    this.#handshake = handshake
    const settings = target.settings
    this.#streamWindow = settings.streamWindow
    this.#connectionWindow = settings.connectionWindow
    this.#recvWindow = Math.max(settings.connectionWindow, DEFAULT_WINDOW)
    this.#nextStreamId = internals.firstStreamId ?? 1
    this.#fields = new ResponseFields(settings.maxHeaderListSize, settings.maxHeaderFields)
    this.#reader = new FrameReader(this, MAX_FRAME_SIZE, settings.maxHeaderListSize + MAX_FIELD_BLOCK_EXCESS)
    this.#settingsRate = new RateLimit(MAX_SETTINGS_PER_WINDOW, SETTINGS_WINDOW, this.#clock)
    this.#pingRate = new RateLimit(MAX_PINGS_PER_WINDOW, PING_WINDOW, this.#clock)
    this.#strayRate = new RateLimit(MAX_STRAY_FRAMES_PER_WINDOW, STRAY_FRAMES_WINDOW, this.#clock)

    socket.on('data', this.#onData)
    socket.on('end', this.#onEnd)
    socket.on('error', this.#onError)
    socket.on('close', this.#onClose)
    socket.on('drain', this.#onDrain)

    const writer = this.#writer
    writer.preface()
    writer.settings([
      [Setting.ENABLE_PUSH, 0],
      [Setting.MAX_CONCURRENT_STREAMS, ANNOUNCED_MAX_CONCURRENT_STREAMS],
      [Setting.INITIAL_WINDOW_SIZE, settings.streamWindow],
      [Setting.MAX_HEADER_LIST_SIZE, settings.maxHeaderListSize],
      [Setting.HEADER_TABLE_SIZE, HEADER_TABLE_SIZE],
    ])
    if (this.#recvWindow > DEFAULT_WINDOW) writer.windowUpdate(0, this.#recvWindow - DEFAULT_WINDOW)
    this.#settingsTimer = this.#clock.setTimeout(this.#onSettingsTimeout, SETTINGS_ACK_TIMEOUT)
    this.#flush()
  }

  // ── Connection ───────────────────────────────────────────────────────────

  get maxConcurrentStreams(): number {
    return this.#maxConcurrentStreams
  }

  get activeStreams(): number {
    return this.#streams.size
  }

  get accepting(): boolean {
    return !this.#failed && !this.#closing && this.#goaway === undefined && this.#nextStreamId <= MAX_STREAM_ID
  }

  /** Frames read so far. */
  get framesReceived(): number {
    return this.#reader.frames
  }

  /** When bytes last arrived, on the target's clock: read once per socket read (liveness wants it, not a per-frame cost). */
  lastReceivedAt: number

  listen(listener: ConnectionListener): void {
    this.#listener = listener
    // Frames after the server's first SETTINGS were held until someone listens.
    process.nextTick(this.#resumeReading)
    if (this.#failure !== undefined) listener.error(this.#failure)
    if (this.#socketClosed) listener.closed()
  }

  open(head: RequestHead, endStream: boolean, handler: StreamHandler): WireStream {
    if (!this.accepting) throw new ReadOnlyError(`The connection to ${this.#origin} takes no new stream (${this.#whyNotAccepting()}); the request was not sent`)
    if (this.#streams.size >= this.#maxConcurrentStreams) {
      throw new ReadOnlyError(`The connection to ${this.#origin} has no free stream: the server allows ${this.#maxConcurrentStreams} at once; the request was not sent`)
    }
    const size = checkRequestHead(head)
    if (size > this.#peerMaxHeaderListSize) {
      throw new InvalidHeaderError('(header list)', `its size ${size} exceeds the server's SETTINGS_MAX_HEADER_LIST_SIZE ${this.#peerMaxHeaderListSize}`)
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
    const id = this.#nextStreamId
    this.#nextStreamId += 2
    this.#writer.headers(id, encoder.finish(), endStream, this.#peerMaxFrameSize)
    // Until our SETTINGS are acknowledged the server may still count on the default window.
    const recvWindow = this.#settingsAcked ? this.#streamWindow : Math.max(this.#streamWindow, DEFAULT_WINDOW)
    const stream = new WireStream(this, id, handler, this.#peerInitialWindow, recvWindow, head.method === 'HEAD', endStream, this.#generation)
    this.#streams.set(id, stream)
    this.#scheduleFlush()
    return stream
  }

  ping(acked: (error?: Error) => void): void {
    if (this.#failed || !this.#writable) {
      process.nextTick(acked, new ConnectionLostError(`The connection to ${this.#origin} is gone: the PING cannot be answered`))
      return
    }
    const sequence = ++this.#pingSequence
    const payload = Buffer.alloc(8)
    payload.writeUInt32BE(sequence, 4)
    this.#pings.set(sequence, acked)
    this.#writer.ping(payload, false)
    this.#scheduleFlush()
  }

  close(): void {
    if (this.#closing || this.#failed) return
    this.#closing = true
    this.#endWhenIdle()
  }

  destroy(error?: Error): void {
    if (!this.#failed) this.#fail(error ?? new ConnectionLostError(`The connection to ${this.#origin} was destroyed`), false)
    this.#writable = false
    this.#socket.destroy()
  }

  // ── Stream owner ─────────────────────────────────────────────────────────

  wantSend(stream: WireStream): void {
    this.#sendable.add(stream)
    this.#scheduleFlush()
  }

  resetStream(stream: WireStream, code: number): void {
    stream.done = true
    this.#dropHeld(stream)
    if (!stream.open) return
    this.#writer.rstStream(stream.id, code)
    this.#recentResets.add(stream.id)
    this.#remove(stream)
    this.#scheduleFlush()
  }

  release(stream: WireStream): void {
    process.nextTick(this.#deliverHeld, stream)
  }

  // ── Frames from the server (FrameHandler) ────────────────────────────────

  onData(streamId: number, data: Buffer, flowLength: number, endStream: boolean): void {
    if (flowLength > this.#recvWindow) {
      throw connectionError(Http2ErrorCode.FLOW_CONTROL_ERROR, `DATA of ${flowLength} octets on stream ${streamId} exceeds the connection window ${this.#recvWindow} (RFC 9113 §6.9.1)`)
    }
    this.#recvWindow -= flowLength
    // The connection window is given back on arrival, the stream's as the exchange takes the bytes:
    // the stream windows bound what is held, and a paused stream never stalls the others.
    this.#creditConnection(flowLength)
    if (data.length === 0 && !endStream) {
      this.counters.emptyData++
      if (++this.#emptyDataInARow > MAX_EMPTY_DATA_IN_A_ROW) {
        throw new PeerLimitError('MAX_EMPTY_DATA_IN_A_ROW', `More than ${MAX_EMPTY_DATA_IN_A_ROW} DATA frames in a row without content or END_STREAM`, Http2ErrorCode.ENHANCE_YOUR_CALM)
      }
    } else {
      this.#emptyDataInARow = 0
    }
    const stream = this.#streams.get(streamId)
    if (stream === undefined) {
      this.#onClosedStream('DATA', streamId, true)
      return
    }
    if (stream.remoteEnded) {
      this.#streamError(stream, Http2ErrorCode.STREAM_CLOSED, `DATA on stream ${streamId} after its END_STREAM (RFC 9113 §5.1)`)
      return
    }
    if (flowLength > stream.recvWindow) {
      this.#streamError(stream, Http2ErrorCode.FLOW_CONTROL_ERROR, `DATA of ${flowLength} octets on stream ${streamId} exceeds its window ${stream.recvWindow} (RFC 9113 §6.9.1)`)
      return
    }
    stream.recvWindow -= flowLength
    // Padding is consumed on arrival; only the content waits for the exchange.
    if (flowLength > data.length) this.#consume(stream, flowLength - data.length)
    if (!stream.responded) {
      this.#streamError(stream, Http2ErrorCode.PROTOCOL_ERROR, `DATA on stream ${streamId} before the response head (RFC 9113 §8.1)`)
      return
    }
    stream.receivedLength += data.length
    if (stream.noContent ? stream.receivedLength > 0 : stream.expectedLength >= 0 && stream.receivedLength > stream.expectedLength) {
      const expected = stream.noContent ? 'no content' : `content-length ${stream.expectedLength}`
      this.#streamError(stream, Http2ErrorCode.PROTOCOL_ERROR, `The response on stream ${streamId} has more DATA (${stream.receivedLength} octets) than its ${expected} (RFC 9113 §8.1.1)`)
      return
    }
    if (data.length > 0) {
      if (stream.paused || stream.held !== undefined) {
        ;(stream.held ??= []).push(data)
        stream.heldBytes += data.length
      } else {
        stream.handler.data(data)
        this.#consume(stream, data.length)
      }
    }
    if (endStream && !stream.done) this.#remoteEnd(stream, {})
  }

  onHeaders(streamId: number, block: Buffer, endStream: boolean): void {
    const stream = this.#streams.get(streamId)
    if (stream === undefined || stream.remoteEnded) {
      this.#decode(block, false)
      if (stream === undefined) this.#onClosedStream('HEADERS', streamId, true)
      else this.#streamError(stream, Http2ErrorCode.STREAM_CLOSED, `HEADERS on stream ${streamId} after its END_STREAM (RFC 9113 §5.1)`)
      return
    }
    const fields = this.#decode(block, stream.responded)
    if (fields.limit !== undefined) {
      // Named as the client's options name them.
      const limit =
        fields.limit === 'maxHeaderListSize'
          ? `a size of ${fields.size} octets (RFC 7541 §4.1), more than maxHeaderSize (${fields.maxListSize}) allows`
          : `${fields.count} header fields, more than maxHeaderFields (${fields.maxFields}) allows`
      this.#streamError(
        stream,
        Http2ErrorCode.ENHANCE_YOUR_CALM,
        `The response head on stream ${streamId} has ${limit}`,
        fields.limit,
      )
      return
    }
    if (fields.malformed !== undefined) {
      this.#streamError(stream, Http2ErrorCode.PROTOCOL_ERROR, `Malformed response on stream ${streamId}: ${fields.malformed} (RFC 9113 §8.1.1)`)
      return
    }
    if (stream.responded) {
      if (!endStream) {
        this.#streamError(stream, Http2ErrorCode.PROTOCOL_ERROR, `Malformed response on stream ${streamId}: a trailer section without END_STREAM (RFC 9113 §8.1)`)
        return
      }
      this.#remoteEnd(stream, fields.headers)
      return
    }
    const status = fields.status
    if (status === 0) {
      this.#streamError(stream, Http2ErrorCode.PROTOCOL_ERROR, `Malformed response on stream ${streamId}: no :status (RFC 9113 §8.3.2)`)
      return
    }
    if (status < 200) {
      // Informational: checked, then skipped. It cannot end the stream, and 101 has no meaning in HTTP/2 (RFC 9113 §8.1, §8.6).
      if (endStream || status === 101) {
        this.#streamError(stream, Http2ErrorCode.PROTOCOL_ERROR, `Malformed response on stream ${streamId}: ${endStream ? `informational ${status} with END_STREAM` : '101 Switching Protocols'} (RFC 9113 §8.1)`)
      }
      return
    }
    stream.responded = true
    stream.expectedLength = fields.contentLength
    if (status === 204 || status === 304) stream.noContent = true
    stream.handler.response(status, fields.headers)
    if (endStream && !stream.done) this.#remoteEnd(stream, {})
  }

  onPriority(streamId: number): void {
    // Deprecated (RFC 9113 §5.3.2) and meaningless from a server: counted, ignored, on any stream.
    this.#stray('PRIORITY', streamId)
  }

  onRstStream(streamId: number, code: number): void {
    this.counters.resets++
    const stream = this.#streams.get(streamId)
    if (stream === undefined) {
      this.#onClosedStream('RST_STREAM', streamId, false)
      return
    }
    this.#remove(stream)
    // After END_STREAM the response is complete; a reset then only stops our sending (RFC 9113 §8.1).
    if (stream.remoteEnded) return
    this.#dropHeld(stream)
    if (stream.done) return
    stream.done = true
    stream.handler.closed({
      code,
      by: 'peer',
      error: undefined,
      lost: undefined,
      unprocessed: code === Http2ErrorCode.REFUSED_STREAM && !stream.responded,
    })
  }

  onSettings(payload: Buffer): void {
    this.counters.settings++
    if (this.#settingsRate.hit()) {
      throw new PeerLimitError('MAX_SETTINGS_PER_WINDOW', `More than ${MAX_SETTINGS_PER_WINDOW} SETTINGS frames within ${SETTINGS_WINDOW} ms`, Http2ErrorCode.ENHANCE_YOUR_CALM)
    }
    if (payload.length / 6 > MAX_SETTINGS_ENTRIES) {
      throw new PeerLimitError('MAX_SETTINGS_ENTRIES', `A SETTINGS frame with ${payload.length / 6} entries, more than ${MAX_SETTINGS_ENTRIES}`, Http2ErrorCode.ENHANCE_YOUR_CALM)
    }
    for (let offset = 0; offset < payload.length; offset += 6) this.#applySetting(payload.readUInt16BE(offset), payload.readUInt32BE(offset + 2))
    this.#writer.settingsAck()
    const handshake = this.#handshake
    if (handshake !== undefined) {
      // The server's preface is here: the connection is up. Nothing more is read until someone listens.
      this.#handshake = undefined
      this.#reader.stop()
      this.#socket.pause()
      handshake()
      return
    }
    this.#wantAnySend()
    this.#listener?.settings()
  }

  onSettingsAck(): void {
    if (this.#settingsAcked) {
      this.#stray('SETTINGS ACK', 0)
      return
    }
    this.#settingsAcked = true
    this.#clock.clearTimeout(this.#settingsTimer)
    this.#settingsTimer = undefined
  }

  onPushPromise(streamId: number): void {
    throw connectionError(Http2ErrorCode.PROTOCOL_ERROR, `PUSH_PROMISE on stream ${streamId} although we disabled push (RFC 9113 §6.6)`)
  }

  onPing(payload: Buffer, ack: boolean): void {
    if (ack) {
      const sequence = payload.readUInt32BE(0) === 0 ? payload.readUInt32BE(4) : 0
      const acked = this.#pings.get(sequence)
      if (acked === undefined) {
        this.#stray('PING ACK', 0)
        return
      }
      this.#pings.delete(sequence)
      acked()
      return
    }
    this.counters.pings++
    if (this.#pingRate.hit()) {
      throw new PeerLimitError('MAX_PINGS_PER_WINDOW', `More than ${MAX_PINGS_PER_WINDOW} PINGs within ${PING_WINDOW} ms`, Http2ErrorCode.ENHANCE_YOUR_CALM)
    }
    this.#writer.ping(payload, true)
  }

  onGoaway(lastStreamId: number, code: number, debug: Buffer): void {
    this.counters.goaways++
    const previous = this.#goaway
    if (previous !== undefined && lastStreamId > previous.lastStreamId) {
      throw connectionError(Http2ErrorCode.PROTOCOL_ERROR, `A GOAWAY raised the last-stream-id from ${previous.lastStreamId} to ${lastStreamId} (RFC 9113 §6.8)`)
    }
    const goaway: Goaway = { errorCode: code, lastStreamId, debug: Buffer.from(debug) }
    this.#goaway = goaway
    this.#listener?.goaway(goaway)
    for (const stream of this.#streams.values()) {
      if (stream.id <= lastStreamId) continue
      this.#remove(stream)
      this.#dropHeld(stream)
      if (stream.done || stream.remoteEnded) continue
      stream.done = true
      stream.handler.closed({
        code: undefined,
        by: undefined,
        error: undefined,
        lost: this.#aboveGoaway(stream.id),
        unprocessed: true,
      })
    }
  }

  onWindowUpdate(streamId: number, increment: number): void {
    if (streamId === 0) {
      if (increment === 0) throw connectionError(Http2ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0 on the connection (RFC 9113 §6.9)')
      if (this.#sendWindow + increment > MAX_WINDOW) {
        throw connectionError(Http2ErrorCode.FLOW_CONTROL_ERROR, `WINDOW_UPDATE takes the connection window past 2^31-1 (RFC 9113 §6.9.1)`)
      }
      this.#sendWindow += increment
      this.#wantAnySend()
      return
    }
    const stream = this.#streams.get(streamId)
    if (stream === undefined) {
      // Common right after our END_STREAM: the server credits what it read. Not stray.
      if (this.#isIdle(streamId)) throw this.#idleStreamError('WINDOW_UPDATE', streamId)
      return
    }
    if (increment === 0) {
      this.#streamError(stream, Http2ErrorCode.PROTOCOL_ERROR, `WINDOW_UPDATE of 0 on stream ${streamId} (RFC 9113 §6.9)`)
      return
    }
    if (stream.sendWindow + increment > MAX_WINDOW) {
      this.#streamError(stream, Http2ErrorCode.FLOW_CONTROL_ERROR, `WINDOW_UPDATE takes the window of stream ${streamId} past 2^31-1 (RFC 9113 §6.9.1)`)
      return
    }
    stream.sendWindow += increment
    if (stream.queued > 0) this.wantSend(stream)
  }

  onUnknown(type: number, streamId: number): void {
    this.#stray(`frame type 0x${type.toString(16)}`, streamId)
  }

  onStreamError(streamId: number, code: number, message: string): void {
    const stream = this.#streams.get(streamId)
    if (stream !== undefined) this.#streamError(stream, code, message)
    else this.#stray('invalid frame', streamId)
  }

  // ── Inbound helpers ──────────────────────────────────────────────────────

  #decode(block: Buffer, trailers: boolean): ResponseFields {
    const fields = this.#fields
    fields.start(trailers)
    try {
      this.#decoder.decode(block, fields.field)
    } catch (error) {
      throw new ProtocolError(`HPACK could not decode a field block: ${(error as Error).message} (RFC 7541)`, {
        http2Code: Http2ErrorCode.COMPRESSION_ERROR,
        cause: error,
      })
    }
    return fields
  }

  /** END_STREAM arrived on a stream that has its response head. */
  #remoteEnd(stream: WireStream, trailers: ResponseHeaders): void {
    if (!stream.noContent && stream.expectedLength >= 0 && stream.receivedLength !== stream.expectedLength) {
      this.#streamError(
        stream,
        Http2ErrorCode.PROTOCOL_ERROR,
        `The response on stream ${stream.id} ended after ${stream.receivedLength} octets of DATA, its content-length is ${stream.expectedLength} (RFC 9113 §8.1.1)`,
      )
      return
    }
    stream.remoteEnded = true
    // Out of the table before the handler hears of it: the slot it frees may be taken at once.
    if (stream.endSent && stream.open) this.#remove(stream)
    if (stream.held !== undefined || stream.paused) {
      stream.heldEnd = trailers
    } else {
      stream.done = true
      stream.handler.end(trailers)
    }
  }

  /** A frame for a stream not in the table: never opened (a connection error) or closed. */
  #onClosedStream(kind: string, streamId: number, answer: boolean): void {
    if (this.#isIdle(streamId)) throw this.#idleStreamError(kind, streamId)
    if (this.#recentResets.has(streamId)) return
    this.#stray(kind, streamId)
    if (answer) {
      // RFC 9113 §5.1: a frame on a closed stream is a stream error STREAM_CLOSED. Not remembered as a
      // reset of ours: that would push out a stream whose in-flight frames are still to come.
      this.#writer.rstStream(streamId, Http2ErrorCode.STREAM_CLOSED)
      this.counters.streamErrors++
    }
  }

  #isIdle(streamId: number): boolean {
    return streamId % 2 === 0 || streamId >= this.#nextStreamId
  }

  #idleStreamError(kind: string, streamId: number): ProtocolError {
    return connectionError(Http2ErrorCode.PROTOCOL_ERROR, `${kind} on stream ${streamId}, which was never opened (RFC 9113 §5.1)`)
  }

  #stray(kind: string, streamId: number): void {
    this.counters.strayFrames++
    if (this.#strayRate.hit()) {
      throw new PeerLimitError(
        'MAX_STRAY_FRAMES_PER_WINDOW',
        `More than ${MAX_STRAY_FRAMES_PER_WINDOW} frames that did nothing within ${STRAY_FRAMES_WINDOW} ms (the last: ${kind} on stream ${streamId})`,
        Http2ErrorCode.ENHANCE_YOUR_CALM,
      )
    }
  }

  #applySetting(id: number, value: number): void {
    switch (id) {
      case Setting.HEADER_TABLE_SIZE:
        // The encoder keeps its table at most HEADER_TABLE_SIZE whatever the server allows, and signals changes itself.
        this.#encoder.setMaxTableSize(value)
        return
      case Setting.ENABLE_PUSH:
        if (value !== 0) throw connectionError(Http2ErrorCode.PROTOCOL_ERROR, `SETTINGS_ENABLE_PUSH ${value} from a server (RFC 9113 §6.5.2)`)
        return
      case Setting.MAX_CONCURRENT_STREAMS:
        this.#maxConcurrentStreams = value
        return
      case Setting.INITIAL_WINDOW_SIZE: {
        if (value > MAX_WINDOW) throw connectionError(Http2ErrorCode.FLOW_CONTROL_ERROR, `SETTINGS_INITIAL_WINDOW_SIZE ${value} exceeds 2^31-1 (RFC 9113 §6.5.2)`)
        const delta = value - this.#peerInitialWindow
        this.#peerInitialWindow = value
        for (const stream of this.#streams.values()) {
          stream.sendWindow += delta
          if (stream.sendWindow > MAX_WINDOW) {
            throw connectionError(Http2ErrorCode.FLOW_CONTROL_ERROR, `SETTINGS_INITIAL_WINDOW_SIZE ${value} takes the window of stream ${stream.id} past 2^31-1 (RFC 9113 §6.9.2)`)
          }
        }
        return
      }
      case Setting.MAX_FRAME_SIZE:
        if (value < MIN_MAX_FRAME_SIZE || value > MAX_MAX_FRAME_SIZE) {
          throw connectionError(Http2ErrorCode.PROTOCOL_ERROR, `SETTINGS_MAX_FRAME_SIZE ${value} outside ${MIN_MAX_FRAME_SIZE}..${MAX_MAX_FRAME_SIZE} (RFC 9113 §6.5.2)`)
        }
        this.#peerMaxFrameSize = value
        return
      case Setting.MAX_HEADER_LIST_SIZE:
        this.#peerMaxHeaderListSize = value
        return
      case Setting.ENABLE_CONNECT_PROTOCOL:
      case Setting.NO_RFC7540_PRIORITIES:
        if (value > 1) throw connectionError(Http2ErrorCode.PROTOCOL_ERROR, `SETTINGS parameter 0x${id.toString(16)} is ${value}, must be 0 or 1`)
        return
      default:
      // Unknown parameters are ignored (RFC 9113 §6.5.2).
    }
  }

  // ── Receive flow control ─────────────────────────────────────────────────

  /** The exchange took `size` octets of `stream` (or they were padding): credit the stream, in batches of half a window. */
  #consume(stream: WireStream, size: number): void {
    if (!stream.open || stream.remoteEnded) return
    stream.unacked += size
    if (stream.unacked >= this.#streamWindow / 2) {
      this.#writer.windowUpdate(stream.id, stream.unacked)
      this.counters.windowUpdatesSent++
      stream.recvWindow += stream.unacked
      stream.unacked = 0
      this.#scheduleFlush()
    }
  }

  #creditConnection(size: number): void {
    this.#recvUnacked += size
    if (this.#recvUnacked >= this.#connectionWindow / 2) {
      this.#writer.windowUpdate(0, this.#recvUnacked)
      this.counters.windowUpdatesSent++
      this.#recvWindow += this.#recvUnacked
      this.#recvUnacked = 0
      this.#scheduleFlush()
    }
  }

  /** Body bytes held while paused are dropped when nobody will take them. */
  #dropHeld(stream: WireStream): void {
    if (stream.held === undefined) return
    stream.held = undefined
    stream.heldBytes = 0
    stream.heldEnd = undefined
  }

  readonly #deliverHeld = (stream: WireStream): void => {
    this.#reading = true
    try {
      while (!stream.paused && !stream.done && stream.held !== undefined) {
        const chunk = stream.held.shift()
        if (chunk === undefined) {
          stream.held = undefined
          break
        }
        stream.heldBytes -= chunk.length
        stream.handler.data(chunk)
        this.#consume(stream, chunk.length)
      }
      if (!stream.paused && !stream.done && stream.held === undefined && stream.heldEnd !== undefined) {
        const trailers = stream.heldEnd
        stream.heldEnd = undefined
        stream.done = true
        stream.handler.end(trailers)
      }
    } catch (error) {
      this.#fault(error)
    }
    this.#reading = false
    this.#flush()
  }

  // ── Sending ──────────────────────────────────────────────────────────────

  #wantAnySend(): void {
    for (const stream of this.#streams.values()) if (stream.queued > 0) this.#sendable.add(stream)
    if (this.#sendable.size > 0) this.#scheduleFlush()
  }

  #scheduleFlush(): void {
    if (this.#reading || this.#flushScheduled) return
    this.#flushScheduled = true
    process.nextTick(this.#flushTick)
  }

  readonly #flushTick = (): void => {
    this.#flushScheduled = false
    this.#flush()
  }

  /** Frames DATA while windows and the socket allow, and writes everything queued. */
  #flush(): void {
    if (!this.#writable) {
      this.#writer.discard()
      return
    }
    let owed: WireStream[] | undefined
    for (;;) {
      if (!this.#socketBlocked && this.#sendable.size > 0) owed = this.#frameData(owed)
      if (this.#writer.queued === 0) break
      this.#generation++
      if (!this.#writer.flush(this.#socket)) this.#socketBlocked = true
      if (this.#socketBlocked || !this.#canFrameMore()) break
    }
    if (owed !== undefined) {
      this.#reading = true
      try {
        for (const stream of owed) if (stream.open && !stream.done) stream.handler.writable()
      } catch (error) {
        this.#fault(error)
      }
      this.#reading = false
      if (this.#writer.queued > 0 || this.#sendable.size > 0) this.#scheduleFlush()
    }
  }

  #canFrameMore(): boolean {
    for (const stream of this.#sendable) {
      if (stream.queued === 0 || (stream.sendWindow > 0 && this.#sendWindow > 0)) return true
    }
    return false
  }

  /** Turns queued body bytes into DATA frames, one frame per stream in turn, up to DATA_PER_WRITE octets. */
  #frameData(owed: WireStream[] | undefined): WireStream[] | undefined {
    let budget = DATA_PER_WRITE
    let progress = true
    while (progress && budget > 0 && this.#sendable.size > 0) {
      progress = false
      for (const stream of this.#sendable) {
        if (stream.queued > 0) {
          const size = Math.min(stream.queued, stream.sendWindow, this.#sendWindow, this.#peerMaxFrameSize, budget)
          if (size <= 0) continue
          const chunk = stream.take(size)
          const last = stream.endQueued && stream.queued === 0
          this.#writer.data(stream.id, chunk, last)
          stream.sendWindow -= size
          this.#sendWindow -= size
          budget -= size
          if (last) stream.endSent = true
          progress = true
          if (stream.writableOwed && stream.queued < WRITE_HIGH_WATER) {
            stream.writableOwed = false
            ;(owed ??= []).push(stream)
          }
        } else if (stream.endQueued && !stream.endSent) {
          this.#writer.data(stream.id, EMPTY, true)
          stream.endSent = true
          progress = true
        }
        if (stream.queued === 0) {
          this.#sendable.delete(stream)
          if (stream.endSent && stream.remoteEnded && stream.open) this.#remove(stream)
        }
      }
    }
    return owed
  }

  // ── Stream table ─────────────────────────────────────────────────────────

  #remove(stream: WireStream): void {
    stream.open = false
    this.#streams.delete(stream.id)
    this.#sendable.delete(stream)
    // Not from here: a stream may end in the middle of a flush.
    if (this.#closing && this.#streams.size === 0) process.nextTick(this.#endWhenIdle)
  }

  #streamError(stream: WireStream, code: number, message: string, limit?: string): void {
    this.counters.streamErrors++
    this.#writer.rstStream(stream.id, code)
    this.#recentResets.add(stream.id)
    this.#scheduleFlush()
    this.#dropHeld(stream)
    if (stream.open) this.#remove(stream)
    if (stream.done) return
    stream.done = true
    stream.handler.closed({
      code,
      by: 'local',
      error: limit === undefined ? new ProtocolError(message, { http2Code: code }) : new PeerLimitError(limit, message, code),
      lost: undefined,
      unprocessed: false,
    })
  }

  #aboveGoaway(id: number): Error {
    const goaway = this.#goaway!
    return new ReadOnlyError(
      `Stream ${id} is above the last-stream-id ${goaway.lastStreamId} of the server's GOAWAY (${errorCodeName(goaway.errorCode)}): the request was not processed`,
    )
  }

  #whyNotAccepting(): string {
    if (this.#failed) return 'it failed'
    if (this.#closing) return 'it is closing'
    if (this.#goaway !== undefined) return `the server sent GOAWAY (${errorCodeName(this.#goaway.errorCode)})`
    return 'its stream ids are used up'
  }

  // ── Ending ───────────────────────────────────────────────────────────────

  /** close() once no stream is left: GOAWAY(NO_ERROR), our FIN, then the socket goes. */
  readonly #endWhenIdle = (): void => {
    if (this.#streams.size > 0 || this.#failed || !this.#writable) return
    this.#writer.goaway(0, Http2ErrorCode.NO_ERROR, EMPTY)
    this.#endSocket()
  }

  /** Flushes what is queued, sends our FIN, and destroys the socket once it left (a server may never send its own FIN). */
  #endSocket(): void {
    this.#flush()
    this.#writable = false
    const socket = this.#socket
    socket.end(() => socket.destroy())
    const timer = this.#clock.setTimeout(() => socket.destroy(), CLOSE_FLUSH_TIMEOUT)
    socket.once('close', () => this.#clock.clearTimeout(timer))
  }

  /**
   * The connection is over: every open stream hears `closed` (`lost`, or
   * unprocessed when above a GOAWAY or never written), pending PINGs fail,
   * and the listener hears `error` when `report`. Streams whose HEADERS
   * were queued at write count `unwritten` never reached the socket.
   */
  #fail(reason: Error, report: boolean, unwritten = this.#generation): void {
    this.#failed = true
    this.#clock.clearTimeout(this.#settingsTimer)
    this.#settingsTimer = undefined
    const handshake = this.#handshake
    this.#handshake = undefined
    if (handshake !== undefined) {
      // A connection that never came up leaves nothing behind.
      this.#socket.destroy()
      handshake(reason)
      return
    }
    if (report) {
      this.#failure = reason
      this.#listener?.error(reason)
    }
    for (const acked of this.#pings.values()) acked(new ConnectionLostError(`The connection to ${this.#origin} ended before the PING's ACK`, { cause: reason }))
    this.#pings.clear()
    const goaway = this.#goaway
    for (const stream of [...this.#streams.values()]) {
      this.#remove(stream)
      if (stream.done || stream.remoteEnded) continue
      this.#dropHeld(stream)
      stream.done = true
      const above = goaway !== undefined && stream.id > goaway.lastStreamId
      const neverSent = stream.generation === unwritten
      stream.handler.closed({
        code: undefined,
        by: undefined,
        error: undefined,
        lost: above ? this.#aboveGoaway(stream.id) : reason,
        unprocessed: above || neverSent,
      })
    }
  }

  /** A connection error we detected (RFC 9113 §5.4.1): GOAWAY with its code, then everything ends. */
  #connectionError(error: ProtocolError): void {
    if (this.#failed) return
    // What was queued and not written stays unwritten: those streams provably never reached the server.
    this.#writer.discard()
    const unwritten = this.#generation
    if (this.#writable) {
      this.#writer.goaway(0, error.http2Code ?? Http2ErrorCode.INTERNAL_ERROR, Buffer.from(error.message.slice(0, 256), 'latin1'))
      this.#endSocket()
    }
    this.#fail(error, true, unwritten)
  }

  /** Something thrown while handling input: our own connection errors, or a handler's bug (the connection cannot be trusted after it). */
  #fault(error: unknown): void {
    if (error instanceof ProtocolError && error.http2Code !== undefined) {
      this.#connectionError(error)
      return
    }
    const reason = new ConnectionLostError(`A stream handler threw while the connection to ${this.#origin} read: ${shown(error)}`, { cause: error })
    if (!this.#failed) this.#fail(reason, true)
    this.#writable = false
    this.#socket.destroy()
  }

  // ── Socket events ────────────────────────────────────────────────────────

  readonly #onData = (chunk: Buffer): void => {
    if (this.#failed) return
    this.lastReceivedAt = this.#clock.now()
    this.#reading = true
    try {
      this.#reader.push(chunk)
    } catch (error) {
      this.#fault(error)
    }
    this.#reading = false
    this.#flush()
  }

  readonly #resumeReading = (): void => {
    if (this.#failed) return
    this.#socket.resume()
    this.#reading = true
    try {
      this.#reader.resume()
    } catch (error) {
      this.#fault(error)
    }
    this.#reading = false
    this.#flush()
  }

  readonly #onDrain = (): void => {
    this.#socketBlocked = false
    this.#flush()
  }

  readonly #onEnd = (): void => {
    // Every byte the server sent was read: its GOAWAYs, if any, are known.
    this.#writable = false
    if (this.#failed) return
    const lost = new ConnectionLostError(`${this.#origin} closed the connection`)
    this.#fail(lost, this.#goaway === undefined && !this.#closing)
  }

  readonly #onError = (error: Error): void => {
    // Acted on at 'close', after whatever could still be read.
    this.#socketError ??= error
  }

  readonly #onClose = (): void => {
    this.#writable = false
    this.#socketClosed = true
    this.#clock.clearTimeout(this.#settingsTimer)
    if (!this.#failed) {
      const cause = this.#socketError
      const lost = new ConnectionLostError(
        cause === undefined ? `The connection to ${this.#origin} closed` : `The connection to ${this.#origin} failed: ${cause.message}`,
        cause === undefined ? {} : { cause },
      )
      this.#fail(lost, !this.#closing)
    }
    this.#listener?.closed()
  }

  readonly #onSettingsTimeout = (): void => {
    this.#settingsTimer = undefined
    this.#connectionError(connectionError(Http2ErrorCode.SETTINGS_TIMEOUT, `The server did not acknowledge our SETTINGS within ${SETTINGS_ACK_TIMEOUT} ms (RFC 9113 §6.5.3)`))
  }
}

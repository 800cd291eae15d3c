/**
 * What each frame from the server does (the frame reader's handler): to a
 * stream (its response head, body, trailers, end, reset, windows) or to
 * the connection (SETTINGS, PING, GOAWAY), reported to the stream's
 * handler or the connection's listener synchronously.
 *
 * Errors follow RFC 9113 §5.4: a stream error resets one stream (our
 * RST_STREAM; the handler hears `closed` with `by: 'local'`); a connection
 * error is thrown, and the connection (shutdown.ts) sends GOAWAY with its
 * code and fails. Frames that do nothing are counted against a flood
 * limit; frames for a stream we reset lately are expected and ignored.
 */
import { Http2ErrorCode, type ResponseHeaders } from '../engine.js'
import { PeerLimitError, ProtocolError } from '../errors.js'
import type { WireConnection, WireCounters } from './connection.js'
import { ResponseFields } from './fields.js'
import { connectionError, MAX_WINDOW } from './frame.js'
import type { FrameHandler } from './frame-reader.js'
import { HpackDecoder } from './hpack.js'
import {
  MAX_EMPTY_DATA_IN_A_ROW,
  MAX_PINGS_PER_WINDOW,
  MAX_STRAY_FRAMES_PER_WINDOW,
  PING_WINDOW,
  RateLimit,
  RECENT_RESETS,
  STRAY_FRAMES_WINDOW,
} from './limits.js'
import type { ReceiveFlow } from './receive-flow.js'
import type { Sender } from './send.js'
import { HEADER_TABLE_SIZE } from './settings.js'
import type { WireStream } from './stream.js'
import type { StreamTable } from './stream-table.js'

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

export class FrameDispatch implements FrameHandler {
  readonly #c: WireConnection
  readonly #streams: StreamTable
  readonly #send: Sender
  readonly #receive: ReceiveFlow
  readonly #counters: WireCounters
  readonly #decoder = new HpackDecoder(HEADER_TABLE_SIZE)
  readonly #fields: ResponseFields
  readonly #recentResets = new RecentResets()
  #emptyDataInARow = 0
  readonly #pingRate: RateLimit
  readonly #strayRate: RateLimit

  constructor(connection: WireConnection, maxHeaderListSize: number, maxHeaderFields: number) {
    this.#c = connection
    this.#streams = connection.streams
    this.#send = connection.send
    this.#receive = connection.receive
    this.#counters = connection.counters
    this.#fields = new ResponseFields(maxHeaderListSize, maxHeaderFields)
    this.#pingRate = new RateLimit(MAX_PINGS_PER_WINDOW, PING_WINDOW, connection.clock)
    this.#strayRate = new RateLimit(MAX_STRAY_FRAMES_PER_WINDOW, STRAY_FRAMES_WINDOW, connection.clock)
  }

  // ── Stream frames ────────────────────────────────────────────────────────

  onData(streamId: number, data: Buffer, flowLength: number, endStream: boolean): void {
    const receive = this.#receive
    receive.received(streamId, flowLength)
    if (data.length === 0 && !endStream) {
      this.#counters.emptyData++
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
    if (flowLength > data.length) receive.consume(stream, flowLength - data.length)
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
        receive.consume(stream, data.length)
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
      this.#streamError(stream, Http2ErrorCode.ENHANCE_YOUR_CALM, `The response head on stream ${streamId} has ${limit}`, fields.limit)
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
    this.#counters.resets++
    const stream = this.#streams.get(streamId)
    if (stream === undefined) {
      this.#onClosedStream('RST_STREAM', streamId, false)
      return
    }
    this.#c.remove(stream)
    // After END_STREAM the response is complete; a reset then only stops our sending (RFC 9113 §8.1).
    if (stream.remoteEnded) return
    stream.dropHeld()
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

  onWindowUpdate(streamId: number, increment: number): void {
    if (streamId === 0) {
      this.#send.creditConnection(increment)
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
    if (stream.queued > 0) this.#send.want(stream)
  }

  onStreamError(streamId: number, code: number, message: string): void {
    const stream = this.#streams.get(streamId)
    if (stream !== undefined) this.#streamError(stream, code, message)
    else this.#stray('invalid frame', streamId)
  }

  // ── Connection frames ────────────────────────────────────────────────────

  onSettings(payload: Buffer): void {
    const c = this.#c
    c.settings.receive(payload)
    const handshake = c.handshake
    if (handshake !== undefined) {
      // The server's preface is here: the connection is up. Nothing more is read until someone listens.
      c.handshake = undefined
      c.reader.stop()
      c.socket.pause()
      handshake()
      return
    }
    this.#send.wantAll()
    c.listener?.settings()
  }

  onSettingsAck(): void {
    if (!this.#c.settings.acknowledged()) this.#stray('SETTINGS ACK', 0)
  }

  onPushPromise(streamId: number): void {
    throw connectionError(Http2ErrorCode.PROTOCOL_ERROR, `PUSH_PROMISE on stream ${streamId} although we disabled push (RFC 9113 §6.6)`)
  }

  onPing(payload: Buffer, ack: boolean): void {
    if (ack) {
      const pings = this.#c.pings
      const sequence = payload.readUInt32BE(0) === 0 ? payload.readUInt32BE(4) : 0
      const acked = pings.get(sequence)
      if (acked === undefined) {
        this.#stray('PING ACK', 0)
        return
      }
      pings.delete(sequence)
      acked()
      return
    }
    this.#counters.pings++
    if (this.#pingRate.hit()) {
      throw new PeerLimitError('MAX_PINGS_PER_WINDOW', `More than ${MAX_PINGS_PER_WINDOW} PINGs within ${PING_WINDOW} ms`, Http2ErrorCode.ENHANCE_YOUR_CALM)
    }
    this.#send.writer.ping(payload, true)
  }

  onGoaway(lastStreamId: number, code: number, debug: Buffer): void {
    this.#counters.goaways++
    this.#c.shutdown.goawayReceived(lastStreamId, code, debug)
  }

  onUnknown(type: number, streamId: number): void {
    this.#stray(`frame type 0x${type.toString(16)}`, streamId)
  }

  // ── What the exchange asks ───────────────────────────────────────────────

  /** The exchange resets the stream: RST_STREAM, and its late frames are expected. */
  reset(stream: WireStream, code: number): void {
    stream.done = true
    stream.dropHeld()
    if (!stream.open) return
    this.#send.writer.rstStream(stream.id, code)
    this.#recentResets.add(stream.id)
    this.#c.remove(stream)
    this.#send.schedule()
  }

  /** Delivers what a paused stream held, now that it was resumed (on a later tick than resume()). */
  readonly deliverHeld = (stream: WireStream): void => {
    const send = this.#send
    send.batching = true
    try {
      while (!stream.paused && !stream.done && stream.held !== undefined) {
        const chunk = stream.held.shift()
        if (chunk === undefined) {
          stream.held = undefined
          break
        }
        stream.heldBytes -= chunk.length
        stream.handler.data(chunk)
        this.#receive.consume(stream, chunk.length)
      }
      if (!stream.paused && !stream.done && stream.held === undefined && stream.heldEnd !== undefined) {
        const trailers = stream.heldEnd
        stream.heldEnd = undefined
        stream.done = true
        stream.handler.end(trailers)
      }
    } catch (error) {
      this.#c.shutdown.fault(error)
    }
    send.batching = false
    send.flush()
  }

  // ── Helpers ──────────────────────────────────────────────────────────────

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
    if (stream.endSent && stream.open) this.#c.remove(stream)
    if (stream.held !== undefined || stream.paused) {
      stream.heldEnd = trailers
    } else {
      stream.done = true
      stream.handler.end(trailers)
    }
  }

  #streamError(stream: WireStream, code: number, message: string, limit?: string): void {
    this.#counters.streamErrors++
    this.#send.writer.rstStream(stream.id, code)
    this.#recentResets.add(stream.id)
    this.#send.schedule()
    stream.dropHeld()
    if (stream.open) this.#c.remove(stream)
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

  /** A frame for a stream not in the table: never opened (a connection error) or closed. */
  #onClosedStream(kind: string, streamId: number, answer: boolean): void {
    if (this.#isIdle(streamId)) throw this.#idleStreamError(kind, streamId)
    if (this.#recentResets.has(streamId)) return
    this.#stray(kind, streamId)
    if (answer) {
      // RFC 9113 §5.1: a frame on a closed stream is a stream error STREAM_CLOSED. Not remembered as a
      // reset of ours: that would push out a stream whose in-flight frames are still to come.
      this.#send.writer.rstStream(streamId, Http2ErrorCode.STREAM_CLOSED)
      this.#counters.streamErrors++
    }
  }

  #isIdle(streamId: number): boolean {
    return streamId % 2 === 0 || streamId >= this.#c.nextStreamId
  }

  #idleStreamError(kind: string, streamId: number): ProtocolError {
    return connectionError(Http2ErrorCode.PROTOCOL_ERROR, `${kind} on stream ${streamId}, which was never opened (RFC 9113 §5.1)`)
  }

  #stray(kind: string, streamId: number): void {
    this.#counters.strayFrames++
    if (this.#strayRate.hit()) {
      throw new PeerLimitError(
        'MAX_STRAY_FRAMES_PER_WINDOW',
        `More than ${MAX_STRAY_FRAMES_PER_WINDOW} frames that did nothing within ${STRAY_FRAMES_WINDOW} ms (the last: ${kind} on stream ${streamId})`,
        Http2ErrorCode.ENHANCE_YOUR_CALM,
      )
    }
  }
}

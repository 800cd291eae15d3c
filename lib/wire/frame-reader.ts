/**
 * Parses a server's frames out of socket chunks split anywhere (RFC 9113
 * §4, §6).
 *
 * The reader enforces what can be checked on a frame alone: its size
 * against the maximum we announced, each type's length rules, which frames
 * must (not) be on stream 0, padding, and that a field block's
 * CONTINUATION frames follow it with nothing in between. Violations that
 * RFC 9113 makes connection errors are thrown as `ProtocolError` (with the
 * code); the one that is a stream error (a PRIORITY frame of the wrong
 * length) is reported to the handler. What a frame means for a stream is
 * the connection's business.
 */
import { Http2ErrorCode } from '../engine.js'
import { PeerLimitError, type ProtocolError } from '../errors.js'
import { connectionError, Flag, FRAME_HEADER_SIZE, FrameType, frameTypeName, MAX_STREAM_ID, MAX_WINDOW } from './frame.js'
import { MAX_CONTINUATIONS } from './limits.js'

/** What the reader calls, one method per frame type, with the payload already taken apart. */
export interface FrameHandler {
  /** DATA: `data` without padding; `flowLength` is the whole payload, as flow control counts it. */
  onData(streamId: number, data: Buffer, flowLength: number, endStream: boolean): void
  /** HEADERS and its CONTINUATION frames: the whole field block, once END_HEADERS arrived. */
  onHeaders(streamId: number, block: Buffer, endStream: boolean): void
  onPriority(streamId: number): void
  onRstStream(streamId: number, code: number): void
  /** A SETTINGS frame (not an ACK): `payload` holds its 6-octet entries. */
  onSettings(payload: Buffer): void
  onSettingsAck(): void
  onPushPromise(streamId: number): void
  /** `payload` is the frame's 8 octets, a view valid only during the call. */
  onPing(payload: Buffer, ack: boolean): void
  onGoaway(lastStreamId: number, code: number, debug: Buffer): void
  onWindowUpdate(streamId: number, increment: number): void
  /** A frame of a type RFC 9113 does not define: to be ignored (§4.1, §5.5). */
  onUnknown(type: number, streamId: number): void
  /** A frame that is a stream error rather than a connection error (§5.4.2). */
  onStreamError(streamId: number, code: number, message: string): void
}

/**
 * Parses a server's frames from socket chunks, the first of which must be
 * SETTINGS (the server preface, RFC 9113 §3.4). Frames wholly inside a chunk are handed
 * over as views of it (no copy); a frame split across chunks is assembled
 * once. `stop()` holds back everything after the current frame until
 * `resume()`.
 */
export class FrameReader {
  /** Frames parsed so far. */
  frames = 0
  readonly #handler: FrameHandler
  readonly #maxFrameSize: number
  readonly #maxFieldBlock: number

  // A frame split across chunks: its header, then its payload as it fills.
  readonly #header = Buffer.alloc(FRAME_HEADER_SIZE)
  #headerFill = 0
  #payload: Buffer | undefined
  #payloadFill = 0
  #type = 0
  #flags = 0
  #streamId = 0

  // A field block waiting for CONTINUATION frames (RFC 9113 §6.10).
  #blockStream = 0
  #blockParts: Buffer[] = []
  #blockLength = 0
  #blockEndStream = false
  #continuations = 0

  #stopped = false
  #held: Buffer | undefined

  /** `maxFieldBlock`: the most octets one field block (HEADERS + CONTINUATIONs) may carry. */
  constructor(handler: FrameHandler, maxFrameSize: number, maxFieldBlock: number) {
    this.#handler = handler
    this.#maxFrameSize = maxFrameSize
    this.#maxFieldBlock = maxFieldBlock
  }

  /** Holds every frame after the current one until `resume()`. */
  stop(): void {
    this.#stopped = true
  }

  /** Parses what was held back. */
  resume(): void {
    this.#stopped = false
    const held = this.#held
    this.#held = undefined
    if (held !== undefined) this.push(held)
  }

  push(chunk: Buffer): void {
    if (this.#stopped) {
      this.#held = this.#held === undefined ? chunk : Buffer.concat([this.#held, chunk])
      return
    }
    let offset = 0
    if (this.#headerFill > 0 || this.#payload !== undefined) {
      offset = this.#fillPartial(chunk)
      if (offset === chunk.length) return
      if (this.#stopped) {
        this.#held = chunk.subarray(offset)
        return
      }
    }
    const end = chunk.length
    while (end - offset >= FRAME_HEADER_SIZE) {
      const length = (chunk[offset]! << 16) | (chunk[offset + 1]! << 8) | chunk[offset + 2]!
      const type = chunk[offset + 3]!
      const flags = chunk[offset + 4]!
      const streamId = chunk.readUInt32BE(offset + 5) & MAX_STREAM_ID
      this.#check(length, type, flags, streamId)
      const start = offset + FRAME_HEADER_SIZE
      if (end - start < length) {
        this.#type = type
        this.#flags = flags
        this.#streamId = streamId
        this.#payload = Buffer.allocUnsafe(length)
        this.#payloadFill = chunk.copy(this.#payload, 0, start, end)
        return
      }
      offset = start + length
      this.#dispatch(type, flags, streamId, chunk.subarray(start, offset))
      if (this.#stopped) {
        if (offset < end) this.#held = chunk.subarray(offset)
        return
      }
    }
    if (offset < end) this.#headerFill = chunk.copy(this.#header, 0, offset, end)
  }

  /** Continues a frame split across chunks; returns where the rest of `chunk` starts. */
  #fillPartial(chunk: Buffer): number {
    let offset = 0
    if (this.#payload === undefined) {
      const taken = chunk.copy(this.#header, this.#headerFill, 0, FRAME_HEADER_SIZE - this.#headerFill)
      this.#headerFill += taken
      offset = taken
      if (this.#headerFill < FRAME_HEADER_SIZE) return offset
      this.#headerFill = 0
      const header = this.#header
      const length = (header[0]! << 16) | (header[1]! << 8) | header[2]!
      this.#type = header[3]!
      this.#flags = header[4]!
      this.#streamId = header.readUInt32BE(5) & MAX_STREAM_ID
      this.#check(length, this.#type, this.#flags, this.#streamId)
      this.#payload = Buffer.allocUnsafe(length)
      this.#payloadFill = 0
    }
    const payload = this.#payload
    const copied = chunk.copy(payload, this.#payloadFill, offset)
    this.#payloadFill += copied
    offset += copied
    if (this.#payloadFill === payload.length) {
      this.#payload = undefined
      this.#dispatch(this.#type, this.#flags, this.#streamId, payload)
    }
    return offset
  }

  /** What a frame header alone tells: its size, its stream, its place in a field block. */
  #check(length: number, type: number, flags: number, streamId: number): void {
    if (this.frames === 0 && (type !== FrameType.SETTINGS || flags & Flag.ACK)) {
      throw connectionError(Http2ErrorCode.PROTOCOL_ERROR, `The server's preface must be a SETTINGS frame, not ${frameTypeName(type)}${flags & Flag.ACK ? ' (ACK)' : ''} (RFC 9113 §3.4)`)
    }
    if (length > this.#maxFrameSize) {
      throw connectionError(
        Http2ErrorCode.FRAME_SIZE_ERROR,
        `${frameTypeName(type)} frame of ${length} octets exceeds SETTINGS_MAX_FRAME_SIZE ${this.#maxFrameSize} (RFC 9113 §4.2)`,
      )
    }
    if (this.#blockStream !== 0 && (type !== FrameType.CONTINUATION || streamId !== this.#blockStream)) {
      throw connectionError(
        Http2ErrorCode.PROTOCOL_ERROR,
        `${frameTypeName(type)} frame on stream ${streamId} inside the field block of stream ${this.#blockStream} (RFC 9113 §6.10)`,
      )
    }
    switch (type) {
      case FrameType.DATA:
      case FrameType.HEADERS:
      case FrameType.PRIORITY:
      case FrameType.RST_STREAM:
      case FrameType.PUSH_PROMISE:
      case FrameType.CONTINUATION:
        if (streamId === 0) {
          throw connectionError(Http2ErrorCode.PROTOCOL_ERROR, `${frameTypeName(type)} frame on stream 0 (RFC 9113 §6)`)
        }
        break
      case FrameType.SETTINGS:
      case FrameType.PING:
      case FrameType.GOAWAY:
        if (streamId !== 0) {
          throw connectionError(Http2ErrorCode.PROTOCOL_ERROR, `${frameTypeName(type)} frame on stream ${streamId}, not 0 (RFC 9113 §6)`)
        }
        break
    }
    switch (type) {
      case FrameType.RST_STREAM:
      case FrameType.WINDOW_UPDATE:
        if (length !== 4) throw frameSize(type, length, 'must be 4')
        break
      case FrameType.PING:
        if (length !== 8) throw frameSize(type, length, 'must be 8')
        break
      case FrameType.GOAWAY:
        if (length < 8) throw frameSize(type, length, 'must be at least 8')
        break
      case FrameType.SETTINGS:
        if (flags & Flag.ACK) {
          if (length !== 0) throw frameSize(type, length, 'must be 0 for an ACK')
        } else if (length % 6 !== 0) {
          throw frameSize(type, length, 'must be a multiple of 6')
        }
        break
      case FrameType.CONTINUATION:
        if (this.#blockStream === 0) {
          throw connectionError(Http2ErrorCode.PROTOCOL_ERROR, `CONTINUATION frame on stream ${streamId} without a HEADERS frame before it (RFC 9113 §6.10)`)
        }
        if (++this.#continuations > MAX_CONTINUATIONS) {
          throw new PeerLimitError(
            'MAX_CONTINUATIONS',
            `More than ${MAX_CONTINUATIONS} CONTINUATION frames in one field block on stream ${streamId}`,
            Http2ErrorCode.ENHANCE_YOUR_CALM,
          )
        }
        this.#checkBlockLength(this.#blockLength + length, streamId)
        break
    }
  }

  #checkBlockLength(length: number, streamId: number): void {
    if (length > this.#maxFieldBlock) {
      throw new PeerLimitError(
        'maxHeaderListSize',
        `A field block of more than ${this.#maxFieldBlock} octets on stream ${streamId}`,
        Http2ErrorCode.ENHANCE_YOUR_CALM,
      )
    }
  }

  #dispatch(type: number, flags: number, streamId: number, payload: Buffer): void {
    this.frames++
    const handler = this.#handler
    switch (type) {
      case FrameType.DATA: {
        handler.onData(streamId, content(type, flags, payload), payload.length, (flags & Flag.END_STREAM) !== 0)
        return
      }
      case FrameType.HEADERS: {
        const fragment = content(type, flags, payload)
        const endStream = (flags & Flag.END_STREAM) !== 0
        if (flags & Flag.END_HEADERS) {
          handler.onHeaders(streamId, fragment, endStream)
        } else {
          this.#checkBlockLength(fragment.length, streamId)
          this.#blockStream = streamId
          this.#blockParts = [fragment]
          this.#blockLength = fragment.length
          this.#blockEndStream = endStream
          this.#continuations = 0
        }
        return
      }
      case FrameType.CONTINUATION: {
        this.#blockParts.push(payload)
        this.#blockLength += payload.length
        if (!(flags & Flag.END_HEADERS)) return
        const block = Buffer.concat(this.#blockParts, this.#blockLength)
        const endStream = this.#blockEndStream
        this.#blockStream = 0
        this.#blockParts = []
        handler.onHeaders(streamId, block, endStream)
        return
      }
      case FrameType.PRIORITY:
        if (payload.length !== 5) {
          handler.onStreamError(streamId, Http2ErrorCode.FRAME_SIZE_ERROR, `PRIORITY frame of ${payload.length} octets, must be 5 (RFC 9113 §6.3)`)
        } else {
          handler.onPriority(streamId)
        }
        return
      case FrameType.RST_STREAM:
        handler.onRstStream(streamId, payload.readUInt32BE(0))
        return
      case FrameType.SETTINGS:
        if (flags & Flag.ACK) handler.onSettingsAck()
        else handler.onSettings(payload)
        return
      case FrameType.PUSH_PROMISE:
        handler.onPushPromise(streamId)
        return
      case FrameType.PING:
        handler.onPing(payload, (flags & Flag.ACK) !== 0)
        return
      case FrameType.GOAWAY:
        handler.onGoaway(payload.readUInt32BE(0) & MAX_STREAM_ID, payload.readUInt32BE(4), payload.subarray(8))
        return
      case FrameType.WINDOW_UPDATE:
        handler.onWindowUpdate(streamId, payload.readUInt32BE(0) & MAX_WINDOW)
        return
      default:
        handler.onUnknown(type, streamId)
    }
  }
}

function frameSize(type: number, length: number, rule: string): ProtocolError {
  return connectionError(Http2ErrorCode.FRAME_SIZE_ERROR, `${frameTypeName(type)} frame of ${length} octets: its length ${rule} (RFC 9113 §6)`)
}

/**
 * What a DATA or HEADERS frame carries once its other fields are taken off
 * (RFC 9113 §6.1, §6.2): with PADDED, a pad length octet first and that many
 * octets of padding last; on HEADERS with PRIORITY, 5 octets of (deprecated)
 * priority after the pad length.
 */
function content(type: number, flags: number, payload: Buffer): Buffer {
  if (!(flags & (Flag.PADDED | Flag.PRIORITY)) || (type === FrameType.DATA && !(flags & Flag.PADDED))) return payload
  let start = 0
  let padding = 0
  if (flags & Flag.PADDED) {
    if (payload.length < 1) throw frameSize(type, payload.length, 'is too short for its pad length')
    padding = payload[0]!
    start = 1
  }
  if (type === FrameType.HEADERS && flags & Flag.PRIORITY) {
    start += 5
    if (payload.length < start) throw frameSize(type, payload.length, 'is too short for its priority fields')
  }
  if (padding > payload.length - start) {
    throw connectionError(
      Http2ErrorCode.PROTOCOL_ERROR,
      `${frameTypeName(type)} frame with ${padding} octets of padding in a payload of ${payload.length} (RFC 9113 §6.1)`,
    )
  }
  return payload.subarray(start, payload.length - padding)
}

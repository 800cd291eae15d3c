/**
 * HTTP/2 frames (RFC 9113 §4, §6): the constants, a reader that parses
 * frames out of socket chunks split anywhere, and a writer that packs the
 * frames of one turn into as few socket writes as it can.
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
import { PeerLimitError, ProtocolError } from '../errors.js'
import { MAX_CONTINUATIONS } from './limits.js'

export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const

export const Flag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const

/** SETTINGS parameters (RFC 9113 §6.5.2, RFC 8441 §3, RFC 9218 §2.1). */
export const Setting = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
  ENABLE_CONNECT_PROTOCOL: 0x8,
  NO_RFC7540_PRIORITIES: 0x9,
} as const

export const FRAME_HEADER_SIZE = 9
/** The client connection preface (RFC 9113 §3.4), sent before our SETTINGS. */
export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')
/** Largest flow-control window and stream id: 2^31-1 (RFC 9113 §5.1.1, §6.9.1). */
export const MAX_WINDOW = 0x7fffffff
export const MAX_STREAM_ID = 0x7fffffff
/** Every window's size until SETTINGS or WINDOW_UPDATE change it (RFC 9113 §6.9.2). */
export const DEFAULT_WINDOW = 65_535
/** SETTINGS_MAX_FRAME_SIZE's bounds (RFC 9113 §6.5.2). */
export const MIN_MAX_FRAME_SIZE = 16_384
export const MAX_MAX_FRAME_SIZE = 16_777_215

const TYPE_NAMES = Object.keys(FrameType) as (keyof typeof FrameType)[]

/** The RFC name of a frame type, or its number for an extension type. */
export function frameTypeName(type: number): string {
  return TYPE_NAMES[type] ?? `frame type 0x${type.toString(16)}`
}

/** A connection error of the given code (RFC 9113 §5.4.1). */
export function connectionError(code: number, message: string): ProtocolError {
  return new ProtocolError(message, { http2Code: code })
}

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

/** Where the writer sends its bytes: a socket, or anything with the same three methods. */
export interface FrameSink {
  write(chunk: Buffer): boolean
  cork(): void
  uncork(): void
}

// Frames are packed into slabs of this size; a slab's bytes are never
// rewritten once handed to the socket, so it serves many turns.
const SLAB_SIZE = 16_384
// DATA payloads up to this size are copied next to their frame header; larger
// ones are handed to the socket as they are (the copy would cost more than a
// separate buffer in the write).
const COPY_LIMIT = 1_024

/**
 * Serializes frames into slabs and hands them to the socket in one write
 * (or one corked batch) per `flush()`. Frames go out in the order written.
 */
export class FrameWriter {
  #slab = Buffer.allocUnsafe(SLAB_SIZE)
  #position = 0
  // Start of the bytes in the slab not yet taken into `#parts`.
  #runStart = 0
  #parts: Buffer[] = []
  #queued = 0

  /** Octets waiting for `flush()`. */
  get queued(): number {
    return this.#queued
  }

  preface(): void {
    const at = this.#reserve(CLIENT_PREFACE.length)
    CLIENT_PREFACE.copy(this.#slab, at)
  }

  /** A SETTINGS frame with `[id, value]` entries in order. */
  settings(entries: readonly (readonly [number, number])[]): void {
    let at = this.#frame(entries.length * 6, FrameType.SETTINGS, 0, 0)
    for (const [id, value] of entries) {
      this.#slab.writeUInt16BE(id, at)
      this.#slab.writeUInt32BE(value, at + 2)
      at += 6
    }
  }

  settingsAck(): void {
    this.#frame(0, FrameType.SETTINGS, Flag.ACK, 0)
  }

  /** `payload`: 8 octets. */
  ping(payload: Buffer, ack: boolean): void {
    const at = this.#frame(8, FrameType.PING, ack ? Flag.ACK : 0, 0)
    payload.copy(this.#slab, at, 0, 8)
  }

  goaway(lastStreamId: number, code: number, debug: Buffer): void {
    const at = this.#frame(8 + debug.length, FrameType.GOAWAY, 0, 0)
    this.#slab.writeUInt32BE(lastStreamId, at)
    this.#slab.writeUInt32BE(code, at + 4)
    debug.copy(this.#slab, at + 8)
  }

  rstStream(streamId: number, code: number): void {
    const at = this.#frame(4, FrameType.RST_STREAM, 0, streamId)
    this.#slab.writeUInt32BE(code, at)
  }

  windowUpdate(streamId: number, increment: number): void {
    const at = this.#frame(4, FrameType.WINDOW_UPDATE, 0, streamId)
    this.#slab.writeUInt32BE(increment, at)
  }

  /** A field block as HEADERS, followed by CONTINUATION frames if it is larger than `maxFrameSize`. */
  headers(streamId: number, block: Buffer, endStream: boolean, maxFrameSize: number): void {
    let offset = Math.min(block.length, maxFrameSize)
    const last = offset === block.length
    let at = this.#frame(offset, FrameType.HEADERS, (endStream ? Flag.END_STREAM : 0) | (last ? Flag.END_HEADERS : 0), streamId)
    block.copy(this.#slab, at, 0, offset)
    while (offset < block.length) {
      const size = Math.min(block.length - offset, maxFrameSize)
      const end = offset + size
      at = this.#frame(size, FrameType.CONTINUATION, end === block.length ? Flag.END_HEADERS : 0, streamId)
      block.copy(this.#slab, at, offset, end)
      offset = end
    }
  }

  /** One DATA frame; `data` must fit the peer's maximum frame size. */
  data(streamId: number, data: Buffer, endStream: boolean): void {
    const flags = endStream ? Flag.END_STREAM : 0
    if (data.length <= COPY_LIMIT) {
      const at = this.#frame(data.length, FrameType.DATA, flags, streamId)
      data.copy(this.#slab, at)
      return
    }
    this.#frame(data.length, FrameType.DATA, flags, streamId, 0)
    this.#takeRun()
    this.#parts.push(data)
    this.#queued += data.length
  }

  /** Writes what was queued: one `write`, or one corked batch. Returns what the socket's last `write` returned. */
  flush(sink: FrameSink): boolean {
    this.#takeRun()
    const parts = this.#parts
    if (parts.length === 0) return true
    this.#parts = []
    this.#queued = 0
    if (parts.length === 1) return sink.write(parts[0]!)
    let writable = true
    sink.cork()
    for (const part of parts) writable = sink.write(part)
    sink.uncork()
    return writable
  }

  /** Drops what was queued (the socket is gone). */
  discard(): void {
    this.#takeRun()
    this.#parts = []
    this.#queued = 0
  }

  /** Writes a frame header and reserves `reserve` octets of payload after it; returns where the payload starts. */
  #frame(length: number, type: number, flags: number, streamId: number, reserve = length): number {
    const at = this.#reserve(FRAME_HEADER_SIZE + reserve)
    const slab = this.#slab
    slab[at] = length >>> 16
    slab[at + 1] = (length >>> 8) & 0xff
    slab[at + 2] = length & 0xff
    slab[at + 3] = type
    slab[at + 4] = flags
    slab.writeUInt32BE(streamId, at + 5)
    return at + FRAME_HEADER_SIZE
  }

  #reserve(size: number): number {
    if (this.#position + size > this.#slab.length) {
      this.#takeRun()
      this.#slab = Buffer.allocUnsafe(Math.max(SLAB_SIZE, size))
      this.#position = 0
      this.#runStart = 0
    }
    const at = this.#position
    this.#position += size
    this.#queued += size
    return at
  }

  #takeRun(): void {
    if (this.#position > this.#runStart) {
      this.#parts.push(this.#slab.subarray(this.#runStart, this.#position))
      this.#runStart = this.#position
    }
  }
}

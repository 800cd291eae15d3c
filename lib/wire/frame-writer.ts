/**
 * Packs the frames we send into as few socket writes as it can: the
 * frames of one turn go out in one write (or one corked batch), in the
 * order written (RFC 9113 §4.1 for the layout).
 */
import { CLIENT_PREFACE, Flag, FRAME_HEADER_SIZE, FrameType } from './frame.js'

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

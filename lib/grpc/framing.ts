/**
 * gRPC's length-prefixed messages (PROTOCOL-HTTP2.md): a flags byte (bit 0:
 * compressed), a 4-byte big-endian length, the message.
 */
import { Code, ConnectError } from '@connectrpc/connect'

const PREFIX = 5
const FLAG_COMPRESSED = 0b1

/** One message with its prefix, in one buffer: HTTP/2 then carries it in as few DATA frames as it can. */
export function frame(message: Uint8Array, compressed: boolean): Buffer {
  const framed = Buffer.allocUnsafe(PREFIX + message.byteLength)
  framed[0] = compressed ? FLAG_COMPRESSED : 0
  framed.writeUInt32BE(message.byteLength, 1)
  framed.set(message, PREFIX)
  return framed
}

/** Receives whole messages: their bytes (a view into the received data) and whether they are compressed. */
export interface MessageSink {
  received(message: Buffer, compressed: boolean): void
}

/**
 * Splits received DATA into messages. A message that arrives whole in one
 * chunk (the common case) is handed on as a view, without a copy; one split
 * over chunks is joined once, when its last byte arrived. The declared length
 * is checked against `readMaxBytes` before anything is buffered.
 */
export class MessageDecoder {
  readonly #readMaxBytes: number
  readonly #sink: MessageSink
  /** Received bytes of a message not yet complete (most calls never need this). */
  #parts: Buffer[] | undefined
  #buffered = 0
  /** Length of the message being buffered; -1 while its prefix is incomplete. */
  #length = -1

  constructor(readMaxBytes: number, sink: MessageSink) {
    this.#readMaxBytes = readMaxBytes
    this.#sink = sink
  }

  /** Whether a message was cut off: the stream must not end here. */
  get partial(): boolean {
    return this.#buffered > 0
  }

  /** Throws a `ConnectError` for a message over the limit or a prefix with unknown flags. */
  push(chunk: Buffer): void {
    if (this.#buffered === 0) {
      this.#scan(chunk)
      return
    }
    const parts = this.#parts!
    parts.push(chunk)
    this.#buffered += chunk.length
    if (this.#length < 0) {
      if (this.#buffered < PREFIX) return
      const head = parts.length === 1 ? parts[0]! : Buffer.concat(parts, this.#buffered)
      parts.length = 0
      parts.push(head)
      this.#length = this.#check(head, 0)
    }
    if (this.#buffered < PREFIX + this.#length) return
    const joined = parts.length === 1 ? parts[0]! : Buffer.concat(parts, this.#buffered)
    parts.length = 0
    this.#buffered = 0
    this.#length = -1
    this.#scan(joined)
  }

  /** Hands on every whole message of `data` and keeps the rest. */
  #scan(data: Buffer): void {
    let offset = 0
    while (data.length - offset >= PREFIX) {
      const length = this.#check(data, offset)
      const end = offset + PREFIX + length
      if (end > data.length) {
        this.#length = length
        break
      }
      this.#sink.received(data.subarray(offset + PREFIX, end), data[offset] === FLAG_COMPRESSED)
      offset = end
    }
    if (offset < data.length) {
      ;(this.#parts ??= []).push(offset === 0 ? data : data.subarray(offset))
      this.#buffered = data.length - offset
    }
  }

  #check(data: Buffer, offset: number): number {
    const flags = data[offset]!
    if (flags > FLAG_COMPRESSED) throw new ConnectError(`protocol error: invalid message flags 0x${flags.toString(16)}`, Code.Internal)
    const length = data.readUInt32BE(offset + 1)
    if (length > this.#readMaxBytes) {
      throw new ConnectError(`received message larger than max (${length} vs. ${this.#readMaxBytes} bytes, readMaxBytes)`, Code.ResourceExhausted)
    }
    return length
  }
}

/**
 * One request's stream on a wire connection: its state on both sides, and
 * the `Stream` API its exchange drives. The connection does the protocol
 * work (frames, windows, errors); this object holds what one stream needs
 * for it, in plain fields the connection reads and writes directly, so the
 * per-frame path has no indirection.
 */
import { Http2ErrorCode, type ResponseHeaders, type Stream, type StreamHandler } from '../engine.js'
import { WRITE_HIGH_WATER } from './limits.js'

/** What a stream asks of its connection. */
export interface StreamOwner {
  /** The stream has body bytes or its end to send. */
  wantSend(stream: WireStream): void
  /** The exchange resets the stream. */
  resetStream(stream: WireStream, code: number): void
  /** The exchange resumed a stream that holds body bytes or its end. */
  release(stream: WireStream): void
}

export class WireStream implements Stream {
  readonly id: number
  readonly handler: StreamHandler
  readonly #owner: StreamOwner

  // ── Sending ──
  /** What the server lets us send on this stream now (RFC 9113 §6.9). */
  sendWindow: number
  /** Body chunks not yet framed, and their total size. */
  readonly queue: Buffer[] = []
  queued = 0
  /** `end()` was called, or the head went with END_STREAM. */
  endQueued: boolean
  /** END_STREAM went into a frame: our side is closed. */
  endSent: boolean
  /** In the sender's list of streams with something to send. */
  sendable = false
  /** `write()` returned false: `writable()` is owed once the queue drains. */
  writableOwed = false
  /** The connection's flush count when the HEADERS were queued: equal to it while they were never written. */
  readonly generation: number

  // ── Receiving ──
  /** What the server may still send before we credit it. */
  recvWindow: number
  /** Bytes the exchange took and we have not credited back yet. */
  unacked = 0
  /** The final response head was reported. */
  responded = false
  /** END_STREAM arrived: the response is complete (its end may still be held while paused). */
  remoteEnded = false
  /** The request was HEAD, or the status says the response has no content (RFC 9110 §6.4.1). */
  noContent: boolean
  /** The response's content-length, -1 when it gave none; and the DATA octets so far. */
  expectedLength = -1
  receivedLength = 0
  /** Body bytes that arrived while paused, their size, and the trailers when END_STREAM came too. */
  paused = false
  held: Buffer[] | undefined
  heldBytes = 0
  heldEnd: ResponseHeaders | undefined
  /** The handler was told the outcome (`end` or `closed`), or the exchange reset the stream: no more calls. */
  done = false
  /** The stream is still in the connection's table (it counts against concurrency). */
  open = true

  constructor(owner: StreamOwner, id: number, handler: StreamHandler, sendWindow: number, recvWindow: number, head: boolean, endStream: boolean, generation: number) {
    this.#owner = owner
    this.id = id
    this.handler = handler
    this.sendWindow = sendWindow
    this.recvWindow = recvWindow
    this.noContent = head
    this.endQueued = endStream
    this.endSent = endStream
    this.generation = generation
  }

  write(chunk: Buffer): boolean {
    if (this.endQueued || !this.open) return true
    if (chunk.length > 0) {
      this.queue.push(chunk)
      this.queued += chunk.length
      this.#owner.wantSend(this)
    }
    if (this.queued < WRITE_HIGH_WATER) return true
    this.writableOwed = true
    return false
  }

  end(): void {
    if (this.endQueued || !this.open) return
    this.endQueued = true
    this.#owner.wantSend(this)
  }

  pause(): void {
    this.paused = true
  }

  resume(): void {
    if (!this.paused) return
    this.paused = false
    if (this.held !== undefined || this.heldEnd !== undefined) this.#owner.release(this)
  }

  reset(code: number = Http2ErrorCode.CANCEL): void {
    this.#owner.resetStream(this, code)
  }

  /** Body bytes held while paused are dropped when nobody will take them. */
  dropHeld(): void {
    if (this.held === undefined) return
    this.held = undefined
    this.heldBytes = 0
    this.heldEnd = undefined
  }

  /** Takes up to `size` octets off the send queue, as one buffer. */
  take(size: number): Buffer {
    const queue = this.queue
    const first = queue[0]!
    let chunk: Buffer
    if (first.length > size) {
      chunk = first.subarray(0, size)
      queue[0] = first.subarray(size)
    } else if (first.length === size || queue.length === 1) {
      chunk = first
      queue.shift()
    } else {
      // Small writes are gathered so frames stay full.
      const parts: Buffer[] = []
      let taken = 0
      while (taken < size && queue.length > 0) {
        const next = queue[0]!
        const part = next.length > size - taken ? next.subarray(0, size - taken) : next
        if (part === next) queue.shift()
        else queue[0] = next.subarray(part.length)
        parts.push(part)
        taken += part.length
      }
      chunk = Buffer.concat(parts, taken)
    }
    this.queued -= chunk.length
    return chunk
  }
}

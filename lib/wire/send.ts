/**
 * Sending (RFC 9113 §6.9): request bodies framed as DATA within the
 * server's windows, the streams with bytes to send taking turns, and every
 * frame we queue leaving in one socket write per turn: at the end of a
 * read, or on the next tick when the exchange wrote.
 */
import type { Socket } from 'node:net'
import { Http2ErrorCode } from '../engine.js'
import { connectionError, DEFAULT_WINDOW, MAX_WINDOW, MIN_MAX_FRAME_SIZE } from './frame.js'
import { FrameWriter } from './frame-writer.js'
import { DATA_PER_WRITE, WRITE_HIGH_WATER } from './limits.js'
import type { WireStream } from './stream.js'
import type { StreamTable } from './stream-table.js'

const EMPTY = Buffer.alloc(0)

/** What the sender asks of its connection. */
export interface SendOwner {
  /** Every open stream, for a window that opened for all of them. */
  readonly streams: StreamTable
  /** Both sides of the stream are done: it leaves the table. */
  remove(stream: WireStream): void
  /** A stream handler threw from `writable()`. */
  fault(error: unknown): void
}

export class Sender {
  /** Every frame we send is queued here and leaves at the next flush. */
  readonly writer = new FrameWriter()
  /** The server's SETTINGS_MAX_FRAME_SIZE: no DATA frame is larger. */
  maxFrameSize = MIN_MAX_FRAME_SIZE
  /** We may still write to the socket (not ended, not destroyed, no EOF). */
  writable = true
  /** A read or a handler callback is queueing frames: its end flushes them, no tick is scheduled. */
  batching = false
  /** Socket writes so far: a stream whose HEADERS were queued at the current count never left. */
  generation = 0

  readonly #socket: Socket
  readonly #owner: SendOwner
  /** What the server lets us send on the whole connection now. */
  #window = DEFAULT_WINDOW
  /**
   * Streams with body bytes or their end to send, in turn; `stream.sendable`
   * says who is here. An array, not a Set: see StreamTable.
   */
  readonly #sendable: WireStream[] = []
  #socketBlocked = false
  #flushScheduled = false

  constructor(socket: Socket, owner: SendOwner) {
    this.#socket = socket
    this.#owner = owner
  }

  /** The stream has body bytes or its end to send. */
  want(stream: WireStream): void {
    this.#enlist(stream)
    this.schedule()
  }

  /** The stream left the table: nothing more of it is sent. */
  forget(stream: WireStream): void {
    if (!stream.sendable) return
    stream.sendable = false
    this.#sendable.splice(this.#sendable.indexOf(stream), 1)
  }

  /** A window opened for every stream (the connection's, or the server's initial window). */
  wantAll(): void {
    for (const stream of this.#owner.streams.values()) if (stream.queued > 0) this.#enlist(stream)
    if (this.#sendable.length > 0) this.schedule()
  }

  #enlist(stream: WireStream): void {
    if (stream.sendable) return
    stream.sendable = true
    this.#sendable.push(stream)
  }

  /** WINDOW_UPDATE on stream 0 (RFC 9113 §6.9). */
  creditConnection(increment: number): void {
    if (increment === 0) throw connectionError(Http2ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0 on the connection (RFC 9113 §6.9)')
    if (this.#window + increment > MAX_WINDOW) {
      throw connectionError(Http2ErrorCode.FLOW_CONTROL_ERROR, `WINDOW_UPDATE takes the connection window past 2^31-1 (RFC 9113 §6.9.1)`)
    }
    this.#window += increment
    this.wantAll()
  }

  /** Flushes on the next tick, unless a batch is under way (it flushes at its end). */
  schedule(): void {
    if (this.batching || this.#flushScheduled) return
    this.#flushScheduled = true
    process.nextTick(this.#flushTick)
  }

  readonly #flushTick = (): void => {
    this.#flushScheduled = false
    this.flush()
  }

  /** The socket took what it had buffered. */
  readonly drained = (): void => {
    this.#socketBlocked = false
    this.flush()
  }

  /** Frames DATA while windows and the socket allow, and writes everything queued. */
  flush(): void {
    if (!this.writable) {
      this.writer.discard()
      return
    }
    let owed: WireStream[] | undefined
    for (;;) {
      if (!this.#socketBlocked && this.#sendable.length > 0) owed = this.#frameData(owed)
      if (this.writer.queued === 0) break
      this.generation++
      if (!this.writer.flush(this.#socket)) this.#socketBlocked = true
      if (this.#socketBlocked || !this.#canFrameMore()) break
    }
    if (owed !== undefined) {
      this.batching = true
      try {
        for (const stream of owed) if (stream.open && !stream.done) stream.handler.writable()
      } catch (error) {
        this.#owner.fault(error)
      }
      this.batching = false
      if (this.writer.queued > 0 || this.#sendable.length > 0) this.schedule()
    }
  }

  #canFrameMore(): boolean {
    for (const stream of this.#sendable) {
      if (stream.queued === 0 || (stream.sendWindow > 0 && this.#window > 0)) return true
    }
    return false
  }

  /** Turns queued body bytes into DATA frames, one frame per stream in turn, up to DATA_PER_WRITE octets. */
  #frameData(owed: WireStream[] | undefined): WireStream[] | undefined {
    let budget = DATA_PER_WRITE
    let progress = true
    const sendable = this.#sendable
    while (progress && budget > 0 && sendable.length > 0) {
      progress = false
      // A turn for each stream; the ones done leave, the others keep their order. Nothing in the
      // turn calls out of the engine (`remove` only updates tables), so the array holds still.
      const turns = sendable.length
      let kept = 0
      for (let turn = 0; turn < turns; turn++) {
        const stream = sendable[turn]!
        if (stream.queued > 0) {
          const size = Math.min(stream.queued, stream.sendWindow, this.#window, this.maxFrameSize, budget)
          if (size <= 0) {
            sendable[kept++] = stream
            continue
          }
          const chunk = stream.take(size)
          const last = stream.endQueued && stream.queued === 0
          this.writer.data(stream.id, chunk, last)
          stream.sendWindow -= size
          this.#window -= size
          budget -= size
          if (last) stream.endSent = true
          progress = true
          if (stream.writableOwed && stream.queued < WRITE_HIGH_WATER) {
            stream.writableOwed = false
            ;(owed ??= []).push(stream)
          }
        } else if (stream.endQueued && !stream.endSent) {
          this.writer.data(stream.id, EMPTY, true)
          stream.endSent = true
          progress = true
        }
        if (stream.queued === 0) {
          stream.sendable = false
          if (stream.endSent && stream.remoteEnded && stream.open) this.#owner.remove(stream)
        } else {
          sendable[kept++] = stream
        }
      }
      sendable.length = kept
    }
    return owed
  }
}

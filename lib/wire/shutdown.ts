/**
 * How a wire connection ends (RFC 9113 §5.4, §6.8): our graceful close
 * (GOAWAY once the last stream is done), the server's GOAWAYs (streams
 * above its last-stream-id were not processed), connection errors (our
 * GOAWAY with the code, then everything fails), the socket ending or
 * failing, and destroy(). Every open stream hears exactly one outcome.
 */
import { Http2ErrorCode, errorCodeName, type Goaway } from '../engine.js'
import { ConnectionLostError, ProtocolError, ReadOnlyError, shown } from '../errors.js'
import type { WireConnection } from './connection.js'
import { connectionError } from './frame.js'
import { CLOSE_FLUSH_TIMEOUT } from './limits.js'

const EMPTY = Buffer.alloc(0)

export class Shutdown {
  /** close() was called: no new stream, GOAWAY once the last one is done. */
  closing = false
  /** A connection error or loss happened: nothing more is read, streams are gone. */
  failed = false
  /** The error reported to the listener, if any (kept to replay to a late `listen`). */
  failure: Error | undefined
  /** The server's latest GOAWAY. */
  goaway: Goaway | undefined
  /** The socket is gone ('close' was emitted). */
  socketClosed = false
  #socketError: Error | undefined
  readonly #c: WireConnection

  constructor(connection: WireConnection) {
    this.#c = connection
  }

  /** Why open() refuses a stream now. */
  whyNotAccepting(): string {
    if (this.failed) return 'it failed'
    if (this.closing) return 'it is closing'
    if (this.goaway !== undefined) return `the server sent GOAWAY (${errorCodeName(this.goaway.errorCode)})`
    return 'its stream ids are used up'
  }

  close(): void {
    if (this.closing || this.failed) return
    this.closing = true
    this.endWhenIdle()
  }

  destroy(error: Error | undefined): void {
    if (!this.failed) this.fail(error ?? new ConnectionLostError(`The connection to ${this.#c.origin} was destroyed`), false)
    this.#c.send.writable = false
    this.#c.socket.destroy()
  }

  /** A GOAWAY from the server: reported, and the streams above its last-stream-id close as not processed. */
  goawayReceived(lastStreamId: number, code: number, debug: Buffer): void {
    const previous = this.goaway
    if (previous !== undefined && lastStreamId > previous.lastStreamId) {
      throw connectionError(Http2ErrorCode.PROTOCOL_ERROR, `A GOAWAY raised the last-stream-id from ${previous.lastStreamId} to ${lastStreamId} (RFC 9113 §6.8)`)
    }
    const goaway: Goaway = { errorCode: code, lastStreamId, debug: Buffer.from(debug) }
    this.goaway = goaway
    const c = this.#c
    c.listener?.goaway(goaway)
    for (const stream of c.streams.values()) {
      if (stream.id <= lastStreamId) continue
      c.remove(stream)
      stream.dropHeld()
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

  #aboveGoaway(id: number): Error {
    const goaway = this.goaway!
    return new ReadOnlyError(
      `Stream ${id} is above the last-stream-id ${goaway.lastStreamId} of the server's GOAWAY (${errorCodeName(goaway.errorCode)}): the request was not processed`,
    )
  }

  /** close() once no stream is left: GOAWAY(NO_ERROR), our FIN, then the socket goes. */
  readonly endWhenIdle = (): void => {
    const c = this.#c
    if (c.streams.size > 0 || this.failed || !c.send.writable) return
    c.send.writer.goaway(0, Http2ErrorCode.NO_ERROR, EMPTY)
    this.#endSocket()
  }

  /** Flushes what is queued, sends our FIN, and destroys the socket once it left (a server may never send its own FIN). */
  #endSocket(): void {
    const { send, socket, clock } = this.#c
    send.flush()
    send.writable = false
    socket.end(() => socket.destroy())
    const timer = clock.setTimeout(() => socket.destroy(), CLOSE_FLUSH_TIMEOUT)
    socket.once('close', () => clock.clearTimeout(timer))
  }

  /**
   * The connection is over: every open stream hears `closed` (`lost`, or
   * unprocessed when above a GOAWAY or never written), pending PINGs fail,
   * and the listener hears `error` when `report`. Streams whose HEADERS
   * were queued at write count `unwritten` never reached the socket.
   */
  fail(reason: Error, report: boolean, unwritten = this.#c.send.generation): void {
    const c = this.#c
    this.failed = true
    c.settings.stop()
    const handshake = c.handshake
    c.handshake = undefined
    if (handshake !== undefined) {
      // A connection that never came up leaves nothing behind.
      c.socket.destroy()
      handshake(reason)
      return
    }
    if (report) {
      this.failure = reason
      c.listener?.error(reason)
    }
    for (const acked of c.pings.values()) acked(new ConnectionLostError(`The connection to ${c.origin} ended before the PING's ACK`, { cause: reason }))
    c.pings.clear()
    const goaway = this.goaway
    for (const stream of c.streams.values()) {
      c.remove(stream)
      if (stream.done || stream.remoteEnded) continue
      stream.dropHeld()
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
  connectionError(error: ProtocolError): void {
    if (this.failed) return
    const send = this.#c.send
    // What was queued and not written stays unwritten: those streams provably never reached the server.
    send.writer.discard()
    const unwritten = send.generation
    if (send.writable) {
      send.writer.goaway(0, error.http2Code ?? Http2ErrorCode.INTERNAL_ERROR, Buffer.from(error.message.slice(0, 256), 'latin1'))
      this.#endSocket()
    }
    this.fail(error, true, unwritten)
  }

  /** Something thrown while handling input: our own connection errors, or a handler's bug (the connection cannot be trusted after it). */
  fault(error: unknown): void {
    if (error instanceof ProtocolError && error.http2Code !== undefined) {
      this.connectionError(error)
      return
    }
    const c = this.#c
    const reason = new ConnectionLostError(`A stream handler threw while the connection to ${c.origin} read: ${shown(error)}`, { cause: error })
    if (!this.failed) this.fail(reason, true)
    c.send.writable = false
    c.socket.destroy()
  }

  // ── Socket events ────────────────────────────────────────────────────────

  readonly onEnd = (): void => {
    // Every byte the server sent was read: its GOAWAYs, if any, are known.
    this.#c.send.writable = false
    if (this.failed) return
    const lost = new ConnectionLostError(`${this.#c.origin} closed the connection`)
    this.fail(lost, this.goaway === undefined && !this.closing)
  }

  readonly onError = (error: Error): void => {
    // Acted on at 'close', after whatever could still be read.
    this.#socketError ??= error
  }

  readonly onClose = (): void => {
    const c = this.#c
    c.send.writable = false
    this.socketClosed = true
    c.settings.stop()
    if (!this.failed) {
      const cause = this.#socketError
      const lost = new ConnectionLostError(
        cause === undefined ? `The connection to ${c.origin} closed` : `The connection to ${c.origin} failed: ${cause.message}`,
        cause === undefined ? {} : { cause },
      )
      this.fail(lost, !this.closing)
    }
    c.listener?.closed()
  }
}

/**
 * Receive flow control (RFC 9113 §6.9): what the server may send before we
 * credit it. The connection window is given back as DATA arrives, a
 * stream's as its exchange takes the bytes: the stream windows bound what
 * is held for a paused reader, and a paused stream never stalls the others.
 * Credit goes out in WINDOW_UPDATEs of half a window or more, not one per
 * frame.
 */
import { Http2ErrorCode, type LocalSettings } from '../engine.js'
import { connectionError, DEFAULT_WINDOW } from './frame.js'
import type { Sender } from './send.js'
import type { WireStream } from './stream.js'

export class ReceiveFlow {
  /** What a stream may receive before we credit it: our SETTINGS_INITIAL_WINDOW_SIZE. */
  readonly #streamWindow: number
  /** What the whole connection may receive before we credit it. */
  readonly #connectionWindow: number
  /** What the server may still send on the connection, and what we took but did not credit yet. */
  #window: number
  #unacked = 0
  readonly #send: Sender
  readonly #counters: { windowUpdatesSent: number }

  constructor(local: LocalSettings, send: Sender, counters: { windowUpdatesSent: number }) {
    this.#streamWindow = local.streamWindow
    this.#connectionWindow = local.connectionWindow
    this.#window = Math.max(local.connectionWindow, DEFAULT_WINDOW)
    this.#send = send
    this.#counters = counters
  }

  /** Opens the connection window from the RFC's default to ours, right after our SETTINGS. */
  announce(): void {
    if (this.#window > DEFAULT_WINDOW) this.#send.writer.windowUpdate(0, this.#window - DEFAULT_WINDOW)
  }

  /** The window a new stream starts with: until our SETTINGS are acknowledged the server may still count on the default. */
  newStreamWindow(settingsAcked: boolean): number {
    return settingsAcked ? this.#streamWindow : Math.max(this.#streamWindow, DEFAULT_WINDOW)
  }

  /** DATA of `flowLength` octets (padding included) arrived: past the connection window, a connection error. */
  received(streamId: number, flowLength: number): void {
    if (flowLength > this.#window) {
      throw connectionError(Http2ErrorCode.FLOW_CONTROL_ERROR, `DATA of ${flowLength} octets on stream ${streamId} exceeds the connection window ${this.#window} (RFC 9113 §6.9.1)`)
    }
    this.#window -= flowLength
    this.#unacked += flowLength
    if (this.#unacked >= this.#connectionWindow / 2) {
      this.#send.writer.windowUpdate(0, this.#unacked)
      this.#counters.windowUpdatesSent++
      this.#window += this.#unacked
      this.#unacked = 0
      this.#send.schedule()
    }
  }

  /** The exchange took `size` octets of `stream` (or they were padding): credit the stream, in batches of half a window. */
  consume(stream: WireStream, size: number): void {
    if (!stream.open || stream.remoteEnded) return
    stream.unacked += size
    if (stream.unacked >= this.#streamWindow / 2) {
      this.#send.writer.windowUpdate(stream.id, stream.unacked)
      this.#counters.windowUpdatesSent++
      stream.recvWindow += stream.unacked
      stream.unacked = 0
      this.#send.schedule()
    }
  }
}

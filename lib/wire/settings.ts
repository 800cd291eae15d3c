/**
 * SETTINGS both ways (RFC 9113 §6.5): ours, announced with the preface and
 * to be acknowledged in time; the server's, counted against floods,
 * validated, and applied to what we send.
 */
import type { Clock, TimerHandle } from '../clock.js'
import { Http2ErrorCode, type LocalSettings } from '../engine.js'
import { PeerLimitError, type ProtocolError } from '../errors.js'
import type { WireCounters } from './connection.js'
import { connectionError, DEFAULT_WINDOW, MAX_MAX_FRAME_SIZE, MAX_WINDOW, MIN_MAX_FRAME_SIZE, Setting } from './frame.js'
import type { HpackEncoder } from './hpack.js'
import { MAX_SETTINGS_ENTRIES, MAX_SETTINGS_PER_WINDOW, RateLimit, SETTINGS_ACK_TIMEOUT, SETTINGS_WINDOW } from './limits.js'
import type { Sender } from './send.js'
import type { StreamTable } from './stream-table.js'

/** The HPACK dynamic table size we decode with (announced) and at most encode with. */
export const HEADER_TABLE_SIZE = 4_096
/** Server-initiated streams we would allow: none can come (push is off), 100 as curl and nghttp2 announce. */
const ANNOUNCED_MAX_CONCURRENT_STREAMS = 100

/** What the settings ask of their connection. */
export interface SettingsOwner {
  /** Every open stream, whose send windows follow the server's initial window. */
  readonly streams: StreamTable
  /** The server did not acknowledge our SETTINGS in time. */
  connectionError(error: ProtocolError): void
}

export class Settings {
  /** The server acknowledged our SETTINGS. */
  acked = false
  /** The server's SETTINGS_MAX_CONCURRENT_STREAMS (Infinity while unset). */
  maxConcurrentStreams = Number.POSITIVE_INFINITY
  /** The server's SETTINGS_MAX_HEADER_LIST_SIZE: the largest request head it takes. */
  maxHeaderListSize = Number.POSITIVE_INFINITY
  /** The server's SETTINGS_INITIAL_WINDOW_SIZE: what a new stream may send before the server credits it. */
  initialWindow = DEFAULT_WINDOW

  readonly #owner: SettingsOwner
  readonly #send: Sender
  readonly #encoder: HpackEncoder
  readonly #clock: Clock
  readonly #counters: WireCounters
  readonly #rate: RateLimit
  #timer: TimerHandle | undefined

  constructor(owner: SettingsOwner, send: Sender, encoder: HpackEncoder, clock: Clock, counters: WireCounters) {
    this.#owner = owner
    this.#send = send
    this.#encoder = encoder
    this.#clock = clock
    this.#counters = counters
    this.#rate = new RateLimit(MAX_SETTINGS_PER_WINDOW, SETTINGS_WINDOW, clock)
  }

  /** Queues our SETTINGS (after the preface) and starts waiting for their ACK. */
  announce(local: LocalSettings): void {
    this.#send.writer.settings([
      [Setting.ENABLE_PUSH, 0],
      [Setting.MAX_CONCURRENT_STREAMS, ANNOUNCED_MAX_CONCURRENT_STREAMS],
      [Setting.INITIAL_WINDOW_SIZE, local.streamWindow],
      [Setting.MAX_HEADER_LIST_SIZE, local.maxHeaderListSize],
      [Setting.HEADER_TABLE_SIZE, HEADER_TABLE_SIZE],
    ])
    this.#timer = this.#clock.setTimeout(this.#onTimeout, SETTINGS_ACK_TIMEOUT)
  }

  /** A SETTINGS ACK arrived; false when none was owed (the server acknowledged twice). */
  acknowledged(): boolean {
    if (this.acked) return false
    this.acked = true
    this.stop()
    return true
  }

  /** The connection is over: no ACK is awaited any more. */
  stop(): void {
    this.#clock.clearTimeout(this.#timer)
    this.#timer = undefined
  }

  /** The server's SETTINGS (not an ACK): counted, applied entry by entry, and acknowledged. */
  receive(payload: Buffer): void {
    this.#counters.settings++
    if (this.#rate.hit()) {
      throw new PeerLimitError('MAX_SETTINGS_PER_WINDOW', `More than ${MAX_SETTINGS_PER_WINDOW} SETTINGS frames within ${SETTINGS_WINDOW} ms`, Http2ErrorCode.ENHANCE_YOUR_CALM)
    }
    if (payload.length / 6 > MAX_SETTINGS_ENTRIES) {
      throw new PeerLimitError('MAX_SETTINGS_ENTRIES', `A SETTINGS frame with ${payload.length / 6} entries, more than ${MAX_SETTINGS_ENTRIES}`, Http2ErrorCode.ENHANCE_YOUR_CALM)
    }
    for (let offset = 0; offset < payload.length; offset += 6) this.#apply(payload.readUInt16BE(offset), payload.readUInt32BE(offset + 2))
    this.#send.writer.settingsAck()
  }

  #apply(id: number, value: number): void {
    switch (id) {
      case Setting.HEADER_TABLE_SIZE:
        // The encoder keeps its table at most HEADER_TABLE_SIZE whatever the server allows, and signals changes itself.
        this.#encoder.setMaxTableSize(value)
        return
      case Setting.ENABLE_PUSH:
        if (value !== 0) throw connectionError(Http2ErrorCode.PROTOCOL_ERROR, `SETTINGS_ENABLE_PUSH ${value} from a server (RFC 9113 §6.5.2)`)
        return
      case Setting.MAX_CONCURRENT_STREAMS:
        this.maxConcurrentStreams = value
        return
      case Setting.INITIAL_WINDOW_SIZE: {
        if (value > MAX_WINDOW) throw connectionError(Http2ErrorCode.FLOW_CONTROL_ERROR, `SETTINGS_INITIAL_WINDOW_SIZE ${value} exceeds 2^31-1 (RFC 9113 §6.5.2)`)
        const delta = value - this.initialWindow
        this.initialWindow = value
        for (const stream of this.#owner.streams.values()) {
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
        this.#send.maxFrameSize = value
        return
      case Setting.MAX_HEADER_LIST_SIZE:
        this.maxHeaderListSize = value
        return
      case Setting.ENABLE_CONNECT_PROTOCOL:
      case Setting.NO_RFC7540_PRIORITIES:
        if (value > 1) throw connectionError(Http2ErrorCode.PROTOCOL_ERROR, `SETTINGS parameter 0x${id.toString(16)} is ${value}, must be 0 or 1`)
        return
      default:
      // Unknown parameters are ignored (RFC 9113 §6.5.2).
    }
  }

  readonly #onTimeout = (): void => {
    this.#timer = undefined
    this.#owner.connectionError(connectionError(Http2ErrorCode.SETTINGS_TIMEOUT, `The server did not acknowledge our SETTINGS within ${SETTINGS_ACK_TIMEOUT} ms (RFC 9113 §6.5.3)`))
  }
}

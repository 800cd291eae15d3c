/**
 * What the wire engine tolerates from a server, and for how long it waits.
 * Every number a hostile or broken server could push against is here, with
 * where it comes from. Exceeding one is a connection error
 * (ENHANCE_YOUR_CALM unless the RFC names another code) reported as a
 * `PeerLimitError` naming the constant.
 */
import type { Clock } from '../clock.js'

/**
 * The largest frame payload we accept: SETTINGS_MAX_FRAME_SIZE's initial
 * value (RFC 9113 §6.5.2), which we never raise. TLS records carry 16 KiB,
 * so larger frames would not save a read.
 */
export const MAX_FRAME_SIZE = 16_384

/**
 * How long the server may take to acknowledge our SETTINGS before we fail
 * the connection with SETTINGS_TIMEOUT (RFC 9113 §6.5.3 leaves the deadline
 * to us): drainpipe's default `connectTimeout`, ample for any round trip.
 */
export const SETTINGS_ACK_TIMEOUT = 10_000

/**
 * After we end the socket (GOAWAY sent), how long our FIN may take to leave
 * before the socket is destroyed anyway: a server that stopped reading would
 * otherwise hold it forever.
 */
export const CLOSE_FLUSH_TIMEOUT = 1_000

/**
 * SETTINGS frames per window. nghttp2 bounds the ACKs it queues (1000,
 * `max_outbound_ack`, CVE-2019-9515); a server legitimately sends a handful
 * per connection, so 100 a second is already hostile.
 */
export const MAX_SETTINGS_PER_WINDOW = 100
export const SETTINGS_WINDOW = 1_000

/** Entries in one SETTINGS frame: nghttp2's default `max_settings` (32). */
export const MAX_SETTINGS_ENTRIES = 32

/**
 * PINGs (not ACKs) per window: each costs us an ACK. nghttp2 queues at most
 * 1000 ACKs (`max_outbound_ack`, CVE-2019-9512); spread over 10 s this
 * still allows any keepalive scheme.
 */
export const MAX_PINGS_PER_WINDOW = 1_000
export const PING_WINDOW = 10_000

/**
 * Frames that do nothing for any open stream: RST_STREAM, WINDOW_UPDATE,
 * PRIORITY, DATA and HEADERS on closed streams, frames of unknown types.
 * Node's `maxSessionInvalidFrames` default (1000) over a 10 s window, so a
 * long-lived connection does not die of a slow trickle.
 */
export const MAX_STRAY_FRAMES_PER_WINDOW = 1_000
export const STRAY_FRAMES_WINDOW = 10_000

/**
 * DATA frames carrying no byte and no END_STREAM, in a row on the
 * connection (CVE-2019-9518, "empty frames flood"): they cost a frame's
 * work and move nothing. Any DATA frame with content resets the count.
 */
export const MAX_EMPTY_DATA_IN_A_ROW = 100

/**
 * CONTINUATION frames after one HEADERS: nghttp2's default
 * `max_continuations` (8, CVE-2024-28182). With 16 KiB frames that is
 * 144 KiB of field block, more than any sane response head.
 */
export const MAX_CONTINUATIONS = 8

/**
 * How far past our SETTINGS_MAX_HEADER_LIST_SIZE one field block's encoded
 * octets may run before the connection is cut. Below it the block is still
 * decoded (HPACK state must stay in step) and only the stream is reset when
 * the decoded list is too large; above it, decoding is the very cost the
 * limit exists to avoid (Go closes the connection for the same reason:
 * CVE-2023-45288).
 */
export const MAX_FIELD_BLOCK_EXCESS = 65_536

/**
 * Streams we reset whose ids we remember, so that the frames the server sent
 * before it saw our RST_STREAM are ignored quietly (RFC 9113 §5.1, closed).
 * Rust's h2 remembers 10 for 30 s; a client cancelling a burst of requests
 * needs more, and a ring of ids costs 4 octets each.
 */
export const RECENT_RESETS = 256

/** Request body bytes a stream buffers before `write()` returns false. */
export const WRITE_HIGH_WATER = 65_536

/**
 * DATA octets framed into one socket write; more follow in the same turn while the socket takes them.
 * Streams take turns frame by frame within a write, so the size only bounds how long a new request's
 * HEADERS wait behind bodies already framed (about a millisecond of TLS at 1 MiB). Each write costs a
 * drain cycle: against 64 KiB writes (alternating builds, one run), 10 MiB uploads took the same to 9 %
 * less CPU and went 21 % faster beside small GETs, whose p99 stayed where it was.
 */
export const DATA_PER_WRITE = 1_048_576

/**
 * Counts events in fixed windows of a clock: `hit()` is true once more than
 * `max` happened within `window` ms. One `now()` per event, no timer.
 */
export class RateLimit {
  #count = 0
  #windowStart = Number.NEGATIVE_INFINITY
  readonly max: number
  readonly window: number
  readonly #clock: Clock

  constructor(max: number, window: number, clock: Clock) {
    this.max = max
    this.window = window
    this.#clock = clock
  }

  hit(): boolean {
    const now = this.#clock.now()
    if (now - this.#windowStart >= this.window) {
      this.#windowStart = now
      this.#count = 0
    }
    return ++this.#count > this.max
  }
}

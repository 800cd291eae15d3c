import type { ClientHttp2Session } from 'node:http2'
import type { Clock, TimerHandle } from './clock.js'

/** Deadline (ms) of the PING that checks a connection after a request timed out. */
const PROBE_TIMEOUT = 2000

/** The ACK deadline of one PING: `keepAlive.timeout`, or the shorter one of a probe after a request timed out. */
export interface Deadline {
  timeout: number
  probe: boolean
}

export interface LivenessSettings {
  /** Read at each scheduling: the origin may double it after `too_many_pings`. 0: no periodic PINGs. */
  interval(): number
  timeout: number
  whenIdle: boolean
}

/**
 * PING liveness for one session. A connection can die silently (NAT state
 * dropped, a frozen peer): when nothing was received for `interval`, send a
 * PING; no ACK within `timeout` means dead. Without `whenIdle`, connections
 * with no open streams are left alone, since servers such as grpc-go punish
 * idle pings.
 *
 * A request that timed out makes the connection suspect: a PING goes out at
 * once, also with periodic PINGs off, with a short deadline (`PROBE_TIMEOUT`
 * at most), and the connection takes no new streams until it is answered.
 * node:http2 stops reading a connection it ended for a protocol error without
 * saying so; this is how such a connection is found out.
 */
export class Liveness {
  readonly #session: ClientHttp2Session
  readonly #clock: Clock
  readonly #settings: LivenessSettings
  readonly #hasStreams: () => boolean
  readonly #onDead: (deadline: Deadline) => void
  #lastReceived: number
  #timer: TimerHandle | undefined
  #stopped = false
  #pinging = false
  #doubtful = false
  readonly #reassured: () => void

  constructor(
    session: ClientHttp2Session,
    clock: Clock,
    settings: LivenessSettings,
    hasStreams: () => boolean,
    onDead: (deadline: Deadline) => void,
    reassured: () => void,
  ) {
    this.#reassured = reassured
    this.#session = session
    this.#clock = clock
    this.#settings = settings
    this.#hasStreams = hasStreams
    this.#onDead = onDead
    this.#lastReceived = clock.now()
    this.#schedule(settings.interval())
  }

  /** While true, the connection should take no new streams: a suspect PING is unanswered. */
  get doubtful(): boolean {
    return this.#doubtful
  }

  /** Something went quiet that should not have (a request timed out): ask the peer now. */
  suspect(): void {
    if (this.#doubtful) return
    this.#doubtful = true
    if (!this.#pinging) this.#ping({ timeout: Math.min(PROBE_TIMEOUT, this.#settings.timeout), probe: true })
  }

  received(): void {
    this.#lastReceived = this.#clock.now()
  }

  stop(): void {
    this.#stopped = true
    this.#clear()
  }

  #schedule(delay: number): void {
    this.#clear()
    if (!this.#stopped && this.#settings.interval() > 0) this.#timer = this.#clock.setTimeout(() => this.#check(), delay)
  }

  #check(): void {
    const interval = this.#settings.interval()
    const quiet = this.#clock.now() - this.#lastReceived
    if (quiet < interval) return this.#schedule(interval - quiet)
    if (!this.#settings.whenIdle && !this.#hasStreams()) return this.#schedule(interval)
    this.#ping()
  }

  #ping(deadline: Deadline = { timeout: this.#settings.timeout, probe: false }): void {
    if (this.#session.destroyed || this.#session.closed) return
    this.#clear()
    this.#pinging = true
    let answered = false
    const timer = this.#clock.setTimeout(() => {
      if (!answered && !this.#stopped) this.#onDead(deadline)
    }, deadline.timeout)
    this.#timer = timer
    const sent = this.#session.ping((error) => {
      answered = true
      this.#pinging = false
      this.#clock.clearTimeout(timer)
      if (this.#stopped) return
      if (error) {
        // Cancelled because the session is going away anyway; otherwise the connection is gone.
        if (!this.#session.destroyed && !this.#session.closed) this.#onDead(deadline)
        return
      }
      this.received()
      this.#schedule(this.#settings.interval())
      if (this.#doubtful) {
        this.#doubtful = false
        this.#reassured()
      }
    })
    if (!sent) this.#onDead(deadline)
  }

  #clear(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer)
    this.#timer = undefined
  }
}

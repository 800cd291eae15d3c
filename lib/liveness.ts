import type { Clock, TimerHandle } from './clock.js'
import type { Connection } from './engine.js'

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
 * PING liveness for one connection. A connection can die silently (NAT state
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
 *
 * A draining connection is probed too, as long as it carries streams: a
 * server that sent GOAWAY and then went silent must not hold them until the
 * drain deadline.
 */
export class Liveness {
  readonly #connection: Connection
  readonly #clock: Clock
  readonly #settings: LivenessSettings
  readonly #hasStreams: () => boolean
  readonly #onDead: (deadline: Deadline) => void
  #timer: TimerHandle | undefined
  #stopped = false
  #pinging = false
  #doubtful = false
  readonly #reassured: () => void

  constructor(
    connection: Connection,
    clock: Clock,
    settings: LivenessSettings,
    hasStreams: () => boolean,
    onDead: (deadline: Deadline) => void,
    reassured: () => void,
  ) {
    this.#reassured = reassured
    this.#connection = connection
    this.#clock = clock
    this.#settings = settings
    this.#hasStreams = hasStreams
    this.#onDead = onDead
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
    const quiet = this.#clock.now() - this.#connection.lastReceivedAt
    if (quiet < interval) return this.#schedule(interval - quiet)
    if (!this.#settings.whenIdle && !this.#hasStreams()) return this.#schedule(interval)
    this.#ping()
  }

  #ping(deadline: Deadline = { timeout: this.#settings.timeout, probe: false }): void {
    if (this.#stopped) return
    this.#clear()
    this.#pinging = true
    let answered = false
    const timer = this.#clock.setTimeout(() => {
      if (!answered && !this.#stopped) this.#onDead(deadline)
    }, deadline.timeout)
    this.#timer = timer
    this.#connection.ping((error) => {
      answered = true
      this.#pinging = false
      this.#clock.clearTimeout(timer)
      if (this.#stopped) return
      // The connection can no longer carry a PING: it is as good as dead.
      if (error) return this.#onDead(deadline)
      this.#schedule(this.#settings.interval())
      if (this.#doubtful) {
        this.#doubtful = false
        this.#reassured()
      }
    })
  }

  #clear(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer)
    this.#timer = undefined
  }
}

import type { ClientHttp2Session } from 'node:http2'
import type { Clock, TimerHandle } from './clock.js'

export interface LivenessSettings {
  /** Read at each scheduling: the origin may double it after `too_many_pings`. */
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
 */
export class Liveness {
  readonly #session: ClientHttp2Session
  readonly #clock: Clock
  readonly #settings: LivenessSettings
  readonly #hasStreams: () => boolean
  readonly #onDead: () => void
  #lastReceived: number
  #timer: TimerHandle | undefined
  #stopped = false

  constructor(
    session: ClientHttp2Session,
    clock: Clock,
    settings: LivenessSettings,
    hasStreams: () => boolean,
    onDead: () => void,
  ) {
    this.#session = session
    this.#clock = clock
    this.#settings = settings
    this.#hasStreams = hasStreams
    this.#onDead = onDead
    this.#lastReceived = clock.now()
    this.#schedule(settings.interval())
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
    if (!this.#stopped) this.#timer = this.#clock.setTimeout(() => this.#check(), delay)
  }

  #check(): void {
    const interval = this.#settings.interval()
    const quiet = this.#clock.now() - this.#lastReceived
    if (quiet < interval) return this.#schedule(interval - quiet)
    if (!this.#settings.whenIdle && !this.#hasStreams()) return this.#schedule(interval)
    this.#ping()
  }

  #ping(): void {
    if (this.#session.destroyed || this.#session.closed) return
    let acked = false
    const deadline = this.#clock.setTimeout(() => {
      if (!acked && !this.#stopped) this.#onDead()
    }, this.#settings.timeout)
    this.#timer = deadline
    this.#session.ping((error) => {
      acked = true
      this.#clock.clearTimeout(deadline)
      if (error || this.#stopped) return
      this.received()
      this.#schedule(this.#settings.interval())
    })
  }

  #clear(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer)
    this.#timer = undefined
  }
}

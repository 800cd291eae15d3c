import { publish } from './channels.js'
import type { Clock, TimerHandle } from './clock.js'
import type { OutlierDetection, SlowStart } from './options.js'
import type { AddressState, AddressStats } from './stats.js'

/** How one exchange ended, as the health of its address sees it (numbers: reported once per request, nothing allocated). */
export const Outcome = {
  /** Nothing to learn: the caller or drainpipe cancelled it, or the server provably never processed it. */
  None: 0,
  /** A complete response that is not a server error. */
  Success: 1,
  /** A response with status ≥ 500 or `grpc-status: 14` (UNAVAILABLE): a failure while `countServerErrors` is on. */
  ServerError: 2,
  /** Reset by the server, lost with its connection, timed out, malformed; or a connect that failed. */
  Failure: 3,
} as const
export type Outcome = (typeof Outcome)[keyof typeof Outcome]

/**
 * Slow-start weights are refreshed on this period (on the origin's clock)
 * while a ramp runs: the pick reads cached numbers and never the clock.
 */
export const REFRESH_INTERVAL = 100
/** An address's ejection multiplier drops by one for each of these spans (× baseEjectionTime) it stays healthy. */
export const DECAY_SPANS = 5

/** One address of an origin: its failures, ejections and slow start. The pick reads `weight` and `avoided`. */
export class AddressHealth {
  readonly address: string
  /** The share the pick gives the address's pools, relative to a warm one's (1): below 1 during slow start. */
  weight = 1
  /** Its pools get requests only when no other pool can take them (ejected, and not in panic). */
  avoided = false
  ejected = false
  /** Returned from an ejection and not yet answered: its next failure ejects it again. */
  probation = false
  consecutiveFailures = 0
  /** Ejections since the address was first seen. */
  ejections = 0
  /** Grows by one with each ejection, shrinks while the address stays healthy; the ejection time is base × multiplier. */
  multiplier = 0
  /** When the last ejection ended (for the multiplier's decay). */
  returnedAt = 0
  /** Slow start: the ramp runs from `rampFrom` until `rampUntil`. */
  rampFrom = 0
  rampUntil = 0
  timer: TimerHandle | undefined

  constructor(address: string) {
    this.address = address
  }

  state(now: number): AddressState {
    if (this.ejected) return 'ejected'
    return now < this.rampUntil ? 'slow-start' : 'healthy'
  }
}

/** What the health of an origin's addresses tells the origin. */
export interface HealthListener {
  /** The address was ejected: its connections should move away. */
  ejected(health: AddressHealth): void
  /** The address is back after its ejection: connections should move to it. */
  returned(health: AddressHealth): void
}

/**
 * The health of one origin's addresses (passive: learned from requests, as
 * Envoy's outlier detection and Finagle's failure accrual do). Exchanges
 * report their outcome; consecutive failures eject an address for a time
 * that grows with each ejection; it comes back on probation (its next
 * failure ejects it again) and in slow start. Never more than
 * `maxEjectionPercent` of the addresses are ejected; when every address is
 * ejected or failing, none is avoided (panic).
 *
 * The pick's weights (slow start) are computed here, on a short period
 * while a ramp runs.
 */
export class Health {
  readonly #origin: string
  readonly #clock: Clock
  readonly #outliers: OutlierDetection | false
  readonly #slowStart: SlowStart | false
  /** The longest a new address's ramp may take: the rotation that brings it connections must stay balanced within 1.5 ages. */
  readonly #newAddressWindow: number
  readonly #listener: HealthListener
  readonly #addresses = new Map<string, AddressHealth>()
  /** Ejections since the client started, shared by its origins. */
  readonly #totals: { ejections: number }
  #seen = false
  #panic = false
  #refresh: TimerHandle | undefined
  #closed = false

  constructor(
    origin: string,
    options: { outlierDetection: OutlierDetection | false; slowStart: SlowStart | false; maxConnectionAge: number },
    clock: Clock,
    totals: { ejections: number },
    listener: HealthListener,
  ) {
    this.#origin = origin
    this.#clock = clock
    this.#outliers = options.outlierDetection
    this.#slowStart = options.slowStart
    const window = options.slowStart ? options.slowStart.window : 0
    this.#newAddressWindow = options.maxConnectionAge > 0 ? Math.min(window, options.maxConnectionAge / 2) : window
    this.#totals = totals
    this.#listener = listener
  }

  get(address: string): AddressHealth | undefined {
    return this.#addresses.get(address)
  }

  /** Every address is ejected or failing: none is avoided. */
  get panic(): boolean {
    return this.#panic
  }

  /** The addresses of the latest lookup. */
  addresses(): string[] {
    return [...this.#addresses.keys()]
  }

  /** A fresh lookup's answer. Addresses seen for the first time after the first lookup start slow; those gone are forgotten. */
  update(addresses: readonly string[]): void {
    let changed = false
    const now = this.#clock.now()
    for (const address of addresses) {
      if (this.#addresses.has(address)) continue
      const health = new AddressHealth(address)
      if (this.#seen) this.#ramp(health, now, this.#newAddressWindow)
      this.#addresses.set(address, health)
      changed = true
    }
    this.#seen = true
    if (this.#addresses.size > addresses.length) {
      for (const [address, health] of this.#addresses) {
        if (addresses.includes(address)) continue
        if (health.timer !== undefined) this.#clock.clearTimeout(health.timer)
        this.#addresses.delete(address)
        changed = true
      }
    }
    if (changed) this.#update(now)
  }

  /**
   * One exchange's outcome on an address (or a connect's): the hot path,
   * once per request, and most often a success that changes nothing. An
   * address not in the latest lookup (an IP literal's, one that left DNS)
   * has no health to keep.
   */
  record(address: string, outcome: Outcome): void {
    if (outcome === Outcome.None || this.#closed) return
    const health = this.#addresses.get(address)
    if (health === undefined || health.ejected) return
    const outliers = this.#outliers
    if (outcome === Outcome.Success || (outcome === Outcome.ServerError && outliers && !outliers.countServerErrors)) {
      if (health.consecutiveFailures === 0 && !health.probation) return
      const wasFailing = outliers && health.consecutiveFailures >= outliers.consecutiveFailures
      health.consecutiveFailures = 0
      health.probation = false
      if (wasFailing) this.#update(this.#clock.now())
      return
    }
    health.consecutiveFailures++
    if (outliers && (health.probation || health.consecutiveFailures >= outliers.consecutiveFailures)) this.#eject(health, outliers)
  }

  #eject(health: AddressHealth, outliers: OutlierDetection): void {
    const now = this.#clock.now()
    const ejected = this.#ejectedCount()
    if (ejected >= this.#maxEjected(outliers)) {
      // Not ejected (the cap): failing. When every address is ejected or failing, none is avoided.
      this.#update(now)
      return
    }
    const { baseEjectionTime: base, maxEjectionTime } = outliers
    // Forgiveness: one step of the multiplier for each span of health since the last ejection ended.
    if (health.multiplier > 0 && health.returnedAt > 0) {
      health.multiplier = Math.max(0, health.multiplier - Math.floor((now - health.returnedAt) / (DECAY_SPANS * base)))
    }
    health.multiplier++
    const duration = Math.min(base * health.multiplier, Math.max(base, maxEjectionTime))
    const failures = health.consecutiveFailures
    health.ejected = true
    health.probation = false
    health.consecutiveFailures = 0
    health.ejections++
    this.#totals.ejections++
    health.timer = this.#clock.setTimeout(() => this.#return(health), duration)
    this.#update(now)
    publish('drainpipe:address:ejected', () => ({
      origin: this.#origin,
      address: health.address,
      consecutiveFailures: failures,
      ejections: health.ejections,
      duration,
      panic: this.#panic,
    }))
    this.#listener.ejected(health)
  }

  #return(health: AddressHealth): void {
    health.timer = undefined
    if (this.#closed || this.#addresses.get(health.address) !== health) return
    const now = this.#clock.now()
    health.ejected = false
    health.probation = true
    health.returnedAt = now
    if (this.#slowStart) this.#ramp(health, now, this.#slowStart.window)
    this.#update(now)
    publish('drainpipe:address:returned', () => ({ origin: this.#origin, address: health.address, ejections: health.ejections }))
    this.#listener.returned(health)
  }

  #ramp(health: AddressHealth, now: number, window: number): void {
    if (!this.#slowStart || window <= 0) return
    health.rampFrom = now
    health.rampUntil = now + window
  }

  #ejectedCount(): number {
    let count = 0
    for (const health of this.#addresses.values()) if (health.ejected) count++
    return count
  }

  /** `maxEjectionPercent` of the addresses, but at least one of two or more (none of one: there would be nothing left). */
  #maxEjected(outliers: OutlierDetection): number {
    const size = this.#addresses.size
    if (size < 2 || outliers.maxEjectionPercent === 0) return 0
    return Math.max(1, Math.floor((size * outliers.maxEjectionPercent) / 100))
  }

  /** Recomputes panic, weights and `avoided` now, and keeps refreshing while a ramp runs. */
  #update(now: number): void {
    const outliers = this.#outliers
    let panic = this.#addresses.size > 0
    for (const health of this.#addresses.values()) {
      const failing = outliers && health.consecutiveFailures >= outliers.consecutiveFailures
      if (!health.ejected && !failing) panic = false
    }
    this.#panic = panic
    let ramping = false
    for (const health of this.#addresses.values()) {
      health.avoided = health.ejected && !panic
      health.weight = 1
      if (now < health.rampUntil && this.#slowStart) {
        const { minWeight } = this.#slowStart
        health.weight = minWeight + ((1 - minWeight) * (now - health.rampFrom)) / (health.rampUntil - health.rampFrom)
        ramping = true
      }
    }
    if (ramping) this.#arm()
  }

  #arm(): void {
    if (this.#refresh !== undefined || this.#closed) return
    this.#refresh = this.#clock.setTimeout(() => {
      this.#refresh = undefined
      this.#update(this.#clock.now())
    }, REFRESH_INTERVAL)
  }

  /** Stops every timer: nothing is left behind after close. */
  close(): void {
    this.#closed = true
    if (this.#refresh !== undefined) this.#clock.clearTimeout(this.#refresh)
    this.#refresh = undefined
    for (const health of this.#addresses.values()) {
      if (health.timer !== undefined) this.#clock.clearTimeout(health.timer)
      health.timer = undefined
    }
  }

  /** Per address, for `client.stats()`. */
  stats(): Record<string, AddressStats> {
    const now = this.#clock.now()
    const result: Record<string, AddressStats> = {}
    for (const [address, health] of this.#addresses) {
      result[address] = {
        state: health.state(now),
        weight: Math.round(health.weight * 1000) / 1000,
        consecutiveFailures: health.consecutiveFailures,
        ejections: health.ejections,
      }
    }
    return result
  }
}

import type { Pool } from './pool.js'

/** What the pick needs to know of a pool's address (its `AddressHealth`). */
export interface Standing {
  /** The share of the address's pools relative to a warm, healthy address's (1). */
  readonly weight: number
  /** Its pools take requests only when no other pool can. */
  readonly avoided: boolean
}

interface Entry {
  readonly pool: Pool
  readonly standing: Standing
  /** Registered pools with the same standing (on the same address): they share its weight. */
  peers: number
  /** Virtual time by which the pool is next due a tie (earliest-deadline-first, as Envoy's weighted round robin). */
  deadline: number
}

/**
 * The pools of one origin that may take new requests now. A pool is
 * registered when its connection is up and deregistered the moment it stops
 * taking requests, so a request is only ever handed to a pool that will
 * write it.
 */
export class Registry {
  readonly #entries: Entry[] = []
  /** The standing of pools whose address has none (an IP literal): full weight, shared. */
  readonly #unknown: Standing = { weight: 1, avoided: false }
  /** Virtual time: the deadline of the last pick. */
  #now = 0

  get size(): number {
    return this.#entries.length
  }

  register(pool: Pool, standing: Standing = this.#unknown): void {
    if (this.#entries.some((entry) => entry.pool === pool)) return
    const entry: Entry = { pool, standing, peers: 1, deadline: 0 }
    this.#entries.push(entry)
    this.#countPeers()
    // Due after one stride from now: a newcomer gets its share from here on, not a burst to catch up.
    entry.deadline = this.#now + entry.peers / standing.weight
  }

  deregister(pool: Pool): void {
    const index = this.#entries.findIndex((entry) => entry.pool === pool)
    if (index === -1) return
    this.#entries.splice(index, 1)
    this.#countPeers()
  }

  /** On (de)registration only, never per pick. */
  #countPeers(): void {
    for (const entry of this.#entries) entry.peers = this.#entries.reduce((peers, other) => peers + (other.standing === entry.standing ? 1 : 0), 0)
  }

  /** Whether a registered pool's server allows any stream at all (SETTINGS_MAX_CONCURRENT_STREAMS above 0): busy or not, it will take requests. */
  get allowsStreams(): boolean {
    for (const entry of this.#entries) if ((entry.pool.maxConcurrentStreams ?? 0) > 0) return true
    return false
  }

  /**
   * The registered pool with the fewest in-flight streams per unit of weight
   * and a free slot; pools of avoided (ejected) addresses only when no other
   * has one. A pool's weight is its address's, shared with the address's
   * other pools: addresses, not connections, get equal shares (6 connections
   * over 5 addresses: a fifth of the requests each, not 2/6 for one).
   *
   * Ties go to the earliest deadline; the chosen pool's next one is a stride
   * (1 / its weight) later. Under light load (nothing in flight) that is
   * weighted round robin: shares follow the weights, and with every weight 1
   * it is exact round robin, so every pool gets the same share. A random
   * tie-break would leave the shares to chance, and a shared start index
   * would lock onto one pool when requests finish and restart in lockstep
   * with the number of pools. A pool passed over keeps its old deadline, so
   * it is owed one pick at most, never a burst.
   *
   * Weights are numbers the address's health keeps current: nothing here
   * reads the clock.
   */
  pick(): Pool | undefined {
    const list = this.#entries
    if (list.length === 1) return list[0]!.pool.hasCapacity ? list[0]!.pool : undefined
    let best: Entry | undefined
    let bestAvoided = true
    let bestScore = Infinity
    for (const entry of list) {
      const pool = entry.pool
      if (!pool.hasCapacity) continue
      const avoided = entry.standing.avoided
      if (avoided && !bestAvoided) continue
      const weight = entry.standing.weight / entry.peers
      const score = pool.inFlight / weight
      if (best !== undefined && avoided === bestAvoided && (score > bestScore || (score === bestScore && entry.deadline >= best.deadline))) continue
      best = entry
      bestAvoided = avoided
      bestScore = score
    }
    if (best === undefined) return undefined
    if (best.deadline > this.#now) this.#now = best.deadline
    best.deadline = this.#now + best.peers / best.standing.weight
    return best.pool
  }
}

import type { Pool } from './pool.js'

/**
 * The pools of one origin that may take new requests now. A pool is
 * registered when its connection is up and deregistered the moment it stops
 * taking requests, so a request is only ever handed to a pool that will
 * write it.
 */
export class Registry {
  readonly #pools: Pool[] = []
  /** When each pool was last picked (a pick counter, not a clock): ties go to the longest-unpicked. */
  readonly #lastPicked = new WeakMap<Pool, number>()
  #picks = 0

  get size(): number {
    return this.#pools.length
  }

  register(pool: Pool): void {
    if (!this.#pools.includes(pool)) this.#pools.push(pool)
  }

  deregister(pool: Pool): void {
    const index = this.#pools.indexOf(pool)
    if (index !== -1) this.#pools.splice(index, 1)
  }

  /** Whether a registered pool's server allows any stream at all (SETTINGS_MAX_CONCURRENT_STREAMS above 0): busy or not, it will take requests. */
  get allowsStreams(): boolean {
    for (const pool of this.#pools) if ((pool.maxConcurrentStreams ?? 0) > 0) return true
    return false
  }

  /**
   * The registered pool with the fewest in-flight streams and a free slot;
   * ties rotate: the tied pool picked longest ago wins. Under light load
   * (nothing in flight) that is exact round robin, so every pool gets the
   * same share; a random tie-break would leave the shares to chance, and a
   * shared start index would lock onto one pool when requests finish and
   * restart in lockstep with the number of pools.
   */
  pick(): Pool | undefined {
    const list = this.#pools
    if (list.length === 1) return list[0]!.hasCapacity ? list[0] : undefined
    let best: Pool | undefined
    let bestInFlight = Infinity
    let bestPicked = Infinity
    for (const pool of list) {
      if (!pool.hasCapacity) continue
      const inFlight = pool.inFlight
      if (inFlight > bestInFlight) continue
      const picked = this.#lastPicked.get(pool) ?? -1
      if (inFlight < bestInFlight || picked < bestPicked) {
        best = pool
        bestInFlight = inFlight
        bestPicked = picked
      }
    }
    if (best !== undefined) this.#lastPicked.set(best, this.#picks++)
    return best
  }
}

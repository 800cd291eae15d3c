import type { Pool } from './pool.js'

/**
 * Origin → the pools that may take new requests now. A pool is registered
 * when its connection is up and deregistered the moment it turns read-only,
 * so a request is only ever handed to a pool that will write it.
 */
export class Registry {
  readonly #pools = new Map<string, Pool[]>()
  readonly #random: () => number

  constructor(random: () => number) {
    this.#random = random
  }

  register(pool: Pool): void {
    const list = this.#pools.get(pool.origin)
    if (list === undefined) this.#pools.set(pool.origin, [pool])
    else if (!list.includes(pool)) list.push(pool)
  }

  deregister(pool: Pool): void {
    const list = this.#pools.get(pool.origin)
    if (list === undefined) return
    const index = list.indexOf(pool)
    if (index !== -1) list.splice(index, 1)
    if (list.length === 0) this.#pools.delete(pool.origin)
  }

  pools(origin: string): readonly Pool[] {
    return this.#pools.get(origin) ?? []
  }

  /**
   * The registered pool with the fewest in-flight streams and a free slot.
   * Ties start from a random pool: a counter would lock onto one pool when
   * requests finish and restart in lockstep with the number of pools.
   */
  pick(origin: string): Pool | undefined {
    const list = this.#pools.get(origin)
    if (list === undefined) return undefined
    const length = list.length
    if (length === 1) return list[0]!.hasCapacity ? list[0] : undefined
    const start = Math.floor(this.#random() * length)
    let best: Pool | undefined
    for (let i = 0; i < length; i++) {
      const pool = list[(start + i) % length]!
      if (pool.hasCapacity && (best === undefined || pool.inFlight < best.inFlight)) best = pool
    }
    return best
  }
}

import type { AddressHealth, Health } from './health.js'
import type { Pool } from './pool.js'
import type { Shard } from './shard.js'

/**
 * Where an origin's connections go: each new connection to the address of
 * the fresh lookup with the fewest of the origin's connections, ejected
 * addresses only as the last fallbacks; and the moves that keep the spread
 * right when an address leaves DNS, is ejected, or comes back. A move is a
 * recycle of one shard (make-before-break): its successor's lookup places
 * it.
 */
export class Placement {
  readonly #shards: readonly Shard[]
  /** The origin's pools not yet closed, draining ones included. */
  readonly #pools: ReadonlySet<Pool>
  readonly #health: Health
  /**
   * The address each pool was given, claimed the moment it is chosen: pools
   * whose lookups answer in the same tick must see each other's choice
   * before any of them has connected.
   */
  readonly #claims = new WeakMap<Pool, string>()
  #tieBreak = 0

  constructor(shards: readonly Shard[], pools: ReadonlySet<Pool>, health: Health) {
    this.#shards = shards
    this.#pools = pools
    this.#health = health
  }

  /** The address `pool` was given first (the one a connect failure counts for). */
  claim(pool: Pool): string | undefined {
    return this.#claims.get(pool)
  }

  /** The addresses `pool` tries, the chosen one first, from a lookup's answer (its health already updated). */
  choose(pool: Pool, addresses: readonly string[]): string[] {
    const counts = this.#spread(addresses, pool)
    // Panic leaves nothing avoided, and the health caps ejections below all: some address is usable.
    const usable = addresses.filter((address) => !this.#health.get(address)?.avoided)
    const fewest = Math.min(...usable.map((address) => counts.get(address)!))
    const candidates = usable.filter((address) => counts.get(address) === fewest)
    const chosen = candidates[this.#tieBreak++ % candidates.length]!
    this.#claims.set(pool, chosen)
    const avoided = (address: string) => Number(this.#health.get(address)?.avoided === true)
    const fallbacks = addresses.filter((address) => address !== chosen).sort((a, b) => avoided(a) - avoided(b) || counts.get(a)! - counts.get(b)!)
    return [chosen, ...fallbacks]
  }

  /** Connections to addresses that left DNS are recycled now, not at their full age. */
  removed(addresses: readonly string[]): void {
    for (const shard of this.#shards) {
      const state = shard.state
      if (state.name === 'serving' && state.pool.address !== undefined && !addresses.includes(state.pool.address)) {
        shard.transition({ type: 'recycle-due', reason: 'address-removed' })
      }
    }
  }

  /** An ejected address's connections are replaced on other addresses, then drain. */
  ejected(health: AddressHealth): void {
    for (const shard of this.#shards) {
      const state = shard.state
      if (state.name === 'serving' && state.pool.address === health.address) shard.transition({ type: 'recycle-due', reason: 'address-ejected' })
    }
  }

  /**
   * An address back from an ejection has no connection left: connections
   * move to it from the most crowded addresses until the spread is even
   * again (without `maxConnectionAge`, nothing else would bring it traffic).
   */
  returned(health: AddressHealth): void {
    const counts = this.#spread(this.#health.addresses())
    let back = counts.get(health.address) ?? 0
    const moved = new Set<Shard>()
    for (;;) {
      let crowded: string | undefined
      let most = 0
      for (const [address, count] of counts) if (count > most) [crowded, most] = [address, count]
      if (most - back < 2) return
      const shard = this.#shards.find((s) => s.state.name === 'serving' && s.state.pool.address === crowded && !moved.has(s))
      if (shard === undefined) return
      moved.add(shard)
      counts.set(crowded!, most - 1)
      back++
      shard.transition({ type: 'recycle-due', reason: 'address-returned' })
    }
  }

  /**
   * The origin's connections per address (of `addresses`), `except` left
   * out. Pools being replaced or draining are leaving: their successors are
   * what the spread is made of.
   */
  #spread(addresses: readonly string[], except?: Pool): Map<string, number> {
    const leaving = new Set(this.#shards.map((shard) => shard.replacing))
    const counts = new Map(addresses.map((address) => [address, 0]))
    for (const other of this.#pools) {
      if (other === except || leaving.has(other) || other.state.name === 'draining') continue
      const address = other.address ?? this.#claims.get(other)
      const count = address === undefined ? undefined : counts.get(address)
      if (count !== undefined) counts.set(address!, count + 1)
    }
    return counts
  }
}

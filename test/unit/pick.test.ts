/** The pick (lib/registry.ts) and the reconnect backoff (lib/backoff.ts), with no socket. */
import { describe, expect, it } from 'vitest'
import { Backoff } from '../../lib/backoff.js'
import type { Pool } from '../../lib/pool.js'
import { Registry, type Standing } from '../../lib/registry.js'

interface FakePool {
  name: string
  inFlight: number
  hasCapacity: boolean
}

const pools = (...names: string[]): FakePool[] => names.map((name) => ({ name, inFlight: 0, hasCapacity: true }))

function registryOf(list: FakePool[]): Registry {
  const registry = new Registry()
  for (const pool of list) registry.register(pool as unknown as Pool)
  return registry
}

const pickName = (registry: Registry) => (registry.pick() as unknown as FakePool | undefined)?.name

describe('Registry.pick', () => {
  it('nothing registered: no pick', () => {
    expect(new Registry().pick()).toBeUndefined()
  })

  it('nothing in flight anywhere: exact round robin (10/10/10 over 30 picks)', () => {
    const registry = registryOf(pools('a', 'b', 'c'))
    const counts: Record<string, number> = { a: 0, b: 0, c: 0 }
    for (let i = 0; i < 30; i++) counts[pickName(registry)!]!++
    expect(counts).toEqual({ a: 10, b: 10, c: 10 })
  })

  it('the pool with the fewest streams in flight wins', () => {
    const list = pools('a', 'b', 'c')
    list[0]!.inFlight = 3
    list[1]!.inFlight = 1
    list[2]!.inFlight = 2
    expect(pickName(registryOf(list))).toBe('b')
  })

  it('a pool without a free slot (or in doubt) is never picked; none at all: undefined', () => {
    const list = pools('a', 'b')
    list[0]!.hasCapacity = false
    const registry = registryOf(list)
    for (let i = 0; i < 5; i++) expect(pickName(registry)).toBe('b')
    list[1]!.hasCapacity = false
    expect(registry.pick()).toBeUndefined()
  })

  it('a single pool is picked only while it has capacity', () => {
    const list = pools('only')
    const registry = registryOf(list)
    expect(pickName(registry)).toBe('only')
    list[0]!.hasCapacity = false
    expect(registry.pick()).toBeUndefined()
  })

  it('requests that finish in lockstep with the pool count do not lock onto one pool', () => {
    // Two pools, batches of three requests that all finish before the next batch: 60/60 after 40 batches.
    const list = pools('a', 'b')
    const registry = registryOf(list)
    const counts: Record<string, number> = { a: 0, b: 0 }
    for (let batch = 0; batch < 40; batch++) {
      const picked = [0, 1, 2].map(() => {
        const pool = registry.pick() as unknown as FakePool
        pool.inFlight++
        counts[pool.name]!++
        return pool
      })
      for (const pool of picked) pool.inFlight--
    }
    expect(counts).toEqual({ a: 60, b: 60 })
  })

  it('deregistered pools are not picked, and registering twice counts once', () => {
    const list = pools('a', 'b')
    const registry = registryOf(list)
    registry.register(list[0] as unknown as Pool)
    expect(registry.size).toBe(2)
    registry.deregister(list[0] as unknown as Pool)
    for (let i = 0; i < 3; i++) expect(pickName(registry)).toBe('b')
  })
})

/** Pools on addresses: `weights` per address, `pools` per address (default 1). */
function weighted(weights: Record<string, number>, pools: Record<string, number> = {}) {
  const standings: Record<string, { weight: number; avoided: boolean }> = {}
  const list: FakePool[] = []
  const registry = new Registry()
  for (const [address, weight] of Object.entries(weights)) {
    standings[address] = { weight, avoided: false }
    for (let i = 0; i < (pools[address] ?? 1); i++) {
      const pool: FakePool = { name: `${address}#${i}`, inFlight: 0, hasCapacity: true }
      list.push(pool)
      registry.register(pool as unknown as Pool, standings[address] as Standing)
    }
  }
  /** `n` picks with nothing in flight (light load): picks per address. */
  const light = (n: number) => {
    const counts: Record<string, number> = Object.fromEntries(Object.keys(weights).map((address) => [address, 0]))
    for (let i = 0; i < n; i++) counts[pickName(registry)!.split('#')[0]!]!++
    return counts
  }
  return { registry, standings, list, light }
}

describe('Registry.pick with weights', () => {
  it('all weights 1: exact round robin, in registration order', () => {
    const t = weighted({ a: 1, b: 1, c: 1 })
    expect(Array.from({ length: 6 }, () => pickName(t.registry))).toEqual(['a#0', 'b#0', 'c#0', 'a#0', 'b#0', 'c#0'])
  })

  it('light load: the shares follow the weights exactly (weighted round robin by earliest deadline)', () => {
    const t = weighted({ a: 1, b: 0.5, c: 0.25 })
    expect(t.light(700)).toEqual({ a: 400, b: 200, c: 100 })
  })

  it('an address with two pools and one with one: the addresses share equally, not the pools', () => {
    const t = weighted({ a: 1, b: 1 }, { a: 2 })
    expect(t.light(600)).toEqual({ a: 300, b: 300 })
    // Under load too: the two pools of `a` together carry as many streams as `b`'s one.
    for (let i = 0; i < 40; i++) (t.registry.pick() as unknown as FakePool).inFlight++
    expect(t.list.map((pool) => pool.inFlight)).toEqual([10, 10, 20])
  })

  it('under load: the fewest streams in flight per unit of weight win', () => {
    const t = weighted({ a: 1, b: 0.25 })
    for (let i = 0; i < 50; i++) (t.registry.pick() as unknown as FakePool).inFlight++
    expect(t.list.map((pool) => pool.inFlight)).toEqual([40, 10])
  })

  it('a weight that changes takes effect at the next pick (slow start ramps through the standing)', () => {
    const t = weighted({ a: 1, b: 0.1 })
    expect(t.light(110)).toEqual({ a: 100, b: 10 })
    t.standings.b!.weight = 1
    const counts = t.light(100)
    expect(Math.abs(counts.a! - counts.b!)).toBeLessThanOrEqual(10)
  })

  it('a pool registered later is not owed the picks it missed: no burst', () => {
    const t = weighted({ a: 1, b: 1 })
    t.light(100)
    const late: FakePool = { name: 'c#0', inFlight: 0, hasCapacity: true }
    t.registry.register(late as unknown as Pool, { weight: 1, avoided: false })
    const next = Array.from({ length: 6 }, () => pickName(t.registry)!)
    expect(next.filter((name) => name === 'c#0')).toHaveLength(2)
  })

  it('pools of an avoided (ejected) address only when no other pool has a free slot', () => {
    const t = weighted({ a: 1, b: 1 })
    t.standings.a!.avoided = true
    expect(t.light(10)).toEqual({ a: 0, b: 10 })
    t.list[1]!.inFlight = 50
    expect(t.light(10)).toEqual({ a: 0, b: 10 })
    t.list[1]!.hasCapacity = false
    expect(t.light(3)).toEqual({ a: 3, b: 0 })
  })
})

describe('Backoff', () => {
  it('full jitter: each delay is drawn from [0, min(max, base × 2^n)]', () => {
    const backoff = new Backoff(100, 1000, () => 1 - Number.EPSILON)
    const ceilings = Array.from({ length: 6 }, () => Math.round(backoff.next()))
    expect(ceilings).toEqual([100, 200, 400, 800, 1000, 1000])
    const low = new Backoff(100, 1000, () => 0)
    expect(low.next()).toBe(0)
  })

  it('reset() starts again from base; the window is max', () => {
    const backoff = new Backoff(100, 1000, () => 0.5)
    backoff.next()
    backoff.next()
    backoff.reset()
    expect(backoff.next()).toBe(50)
    expect(backoff.window).toBe(1000)
  })
})

/**
 * The shard's transition table, every state × every event, with no socket:
 * a fake owner (origin) and fake pools record what the shard asks of them.
 */
import { describe, expect, it } from 'vitest'
import { Backoff } from '../../lib/backoff.js'
import type { Pool, PoolEvent } from '../../lib/pool.js'
import { type RecycleReason, Shard, type ShardEvent, type ShardOwner, type ShardStateName } from '../../lib/shard.js'
import { ManualClock } from '../helpers/manual-clock.js'

interface FakePool {
  readonly name: string
  readonly told: PoolEvent['type'][]
  responses: number
  age: number
}

function setup(options: { demand?: boolean; idle?: boolean; age?: number; jitter?: number; cooldown?: number } = {}) {
  const clock = new ManualClock()
  const started: { pool: FakePool; successorOf: FakePool | undefined }[] = []
  const recycles: { pool: string; reason: RecycleReason; outcome: string }[] = []
  let made = 0
  const world = { demand: options.demand ?? true, idle: options.idle ?? false }
  const owner: ShardOwner = {
    clock,
    random: () => 0.5,
    maxConnectionAge: options.age ?? 1000,
    maxConnectionAgeJitter: options.jitter ?? 100,
    recycleCooldown: options.cooldown ?? 5000,
    startPool: (_shard, successorOf) => {
      const pool: FakePool = { name: `pool${++made}`, told: [], responses: 0, age: 0 }
      ;(pool as unknown as { transition(event: PoolEvent): void }).transition = (event) => pool.told.push(event.type)
      started.push({ pool, successorOf: successorOf as unknown as FakePool | undefined })
      return pool as unknown as Pool
    },
    hasDemand: () => world.demand,
    isIdle: () => world.idle,
    recycled: (pool, reason, outcome) =>
      recycles.push({ pool: (pool as unknown as FakePool).name, reason, outcome: 'successor' in outcome ? 'ok' : 'failed' }),
  }
  // Backoff delays from [0, 100 × 2^n] with random 0.5: 50, 100, 200, … up to 500.
  const shard = new Shard(0, owner, new Backoff(100, 1000, () => 0.5))
  // A pool the shard never made stands in where none was started: events of pools it does not own change nothing.
  const stranger = { name: 'stranger', told: [], responses: 0, age: 0, transition: () => {} }
  const pool = (n: number) => (started[n - 1]?.pool ?? stranger) as unknown as Pool
  return { clock, shard, started, recycles, world, pool }
}

type Setup = ReturnType<typeof setup>

/** Brings a fresh shard into `state` through the events that lead there. */
function reach(state: ShardStateName, t: Setup): void {
  const { shard, pool } = t
  switch (state) {
    case 'idle':
      return
    case 'connecting':
      return shard.transition({ type: 'demand' })
    case 'backoff':
      shard.transition({ type: 'demand' })
      return shard.transition({ type: 'connect-failed', pool: pool(1), error: new Error('refused') })
    case 'serving':
      shard.transition({ type: 'demand' })
      return shard.transition({ type: 'connected', pool: pool(1) })
    case 'replacing':
      reach('serving', t)
      return shard.transition({ type: 'recycle-due', reason: 'age' })
    case 'finishing':
      reach('serving', t)
      return shard.transition({ type: 'closing' })
    case 'closed':
      return shard.transition({ type: 'closing' })
  }
}

/** The events, each about the pool it concerns in that state: the shard's current one, or its successor. */
const events: [string, (t: Setup) => ShardEvent][] = [
  ['demand', () => ({ type: 'demand' })],
  ['connected (its pool)', (t) => ({ type: 'connected', pool: t.pool(t.started.length) })],
  ['connect-failed (its pool)', (t) => ({ type: 'connect-failed', pool: t.pool(t.started.length), error: new Error('refused') })],
  ['retired by GOAWAY (serving pool)', (t) => ({ type: 'retired', pool: t.pool(1), reason: 'goaway' })],
  ['retired by idle timeout (serving pool)', (t) => ({ type: 'retired', pool: t.pool(1), reason: 'idle-timeout' })],
  ['lost (serving pool)', (t) => ({ type: 'lost', pool: t.pool(1) })],
  ['recycle-due age', () => ({ type: 'recycle-due', reason: 'age' })],
  ['recycle-due requests', () => ({ type: 'recycle-due', reason: 'requests' })],
  ['backoff-over', () => ({ type: 'backoff-over' })],
  ['closing', () => ({ type: 'closing' })],
  ['finished', () => ({ type: 'finished' })],
  ['destroyed', () => ({ type: 'destroyed' })],
]

const states: ShardStateName[] = ['idle', 'connecting', 'backoff', 'serving', 'replacing', 'finishing', 'closed']

/**
 * The expected next state for each state × event (with demand, the origin busy, and pools
 * that never answered a request). `=` means unchanged.
 */
const table: Record<ShardStateName, Record<string, ShardStateName | '='>> = {
  idle: {
    demand: 'connecting', 'connected (its pool)': '=', 'connect-failed (its pool)': '=', 'retired by GOAWAY (serving pool)': '=',
    'retired by idle timeout (serving pool)': '=', 'lost (serving pool)': '=', 'recycle-due age': '=', 'recycle-due requests': '=',
    'backoff-over': '=', closing: 'closed', finished: '=', destroyed: 'closed',
  },
  connecting: {
    demand: '=', 'connected (its pool)': 'serving', 'connect-failed (its pool)': 'backoff', 'retired by GOAWAY (serving pool)': '=',
    'retired by idle timeout (serving pool)': '=', 'lost (serving pool)': '=', 'recycle-due age': '=', 'recycle-due requests': '=',
    'backoff-over': '=', closing: 'finishing', finished: '=', destroyed: 'closed',
  },
  backoff: {
    demand: '=', 'connected (its pool)': '=', 'connect-failed (its pool)': '=', 'retired by GOAWAY (serving pool)': '=',
    'retired by idle timeout (serving pool)': '=', 'lost (serving pool)': '=', 'recycle-due age': '=', 'recycle-due requests': '=',
    'backoff-over': 'connecting', closing: 'closed', finished: '=', destroyed: 'closed',
  },
  serving: {
    demand: '=', 'connected (its pool)': '=', 'connect-failed (its pool)': '=', 'retired by GOAWAY (serving pool)': 'backoff',
    'retired by idle timeout (serving pool)': 'idle', 'lost (serving pool)': 'backoff', 'recycle-due age': 'replacing',
    'recycle-due requests': 'replacing', 'backoff-over': '=', closing: 'finishing', finished: '=', destroyed: 'closed',
  },
  replacing: {
    demand: '=', 'connected (its pool)': 'serving', 'connect-failed (its pool)': 'serving', 'retired by GOAWAY (serving pool)': 'connecting',
    'retired by idle timeout (serving pool)': 'connecting', 'lost (serving pool)': 'connecting', 'recycle-due age': '=',
    'recycle-due requests': '=', 'backoff-over': '=', closing: 'finishing', finished: '=', destroyed: 'closed',
  },
  finishing: {
    demand: '=', 'connected (its pool)': '=', 'connect-failed (its pool)': 'closed', 'retired by GOAWAY (serving pool)': 'closed',
    'retired by idle timeout (serving pool)': 'closed', 'lost (serving pool)': 'closed', 'recycle-due age': '=', 'recycle-due requests': '=',
    'backoff-over': '=', closing: '=', finished: 'closed', destroyed: 'closed',
  },
  closed: {
    demand: '=', 'connected (its pool)': '=', 'connect-failed (its pool)': '=', 'retired by GOAWAY (serving pool)': '=',
    'retired by idle timeout (serving pool)': '=', 'lost (serving pool)': '=', 'recycle-due age': '=', 'recycle-due requests': '=',
    'backoff-over': '=', closing: '=', finished: '=', destroyed: '=',
  },
}

describe('Shard: every state × every event', () => {
  for (const state of states) {
    for (const [name, event] of events) {
      const expected = table[state][name]!
      it(`${state} + ${name} → ${expected === '=' ? state : expected}`, () => {
        const t = setup()
        reach(state, t)
        expect(t.shard.state.name).toBe(state)
        t.shard.transition(event(t))
        expect(t.shard.state.name).toBe(expected === '=' ? state : expected)
      })
    }
  }
})

describe('Shard: what each transition does', () => {
  it('demand starts one pool; a second demand while connecting starts none', () => {
    const t = setup()
    t.shard.transition({ type: 'demand' })
    t.shard.transition({ type: 'demand' })
    expect(t.started).toHaveLength(1)
    expect(t.started[0]!.successorOf).toBeUndefined()
  })

  it('connected arms the recycle at age + random × jitter, and recycle-due starts a successor of the serving pool', () => {
    const t = setup({ age: 1000, jitter: 100 })
    reach('serving', t)
    expect(t.clock.pending()).toEqual([1050])
    t.clock.advance(1050)
    expect(t.shard.state.name).toBe('replacing')
    expect(t.started).toHaveLength(2)
    expect(t.started[1]!.successorOf).toBe(t.started[0]!.pool)
  })

  it('no maxConnectionAge: no recycle timer', () => {
    const t = setup({ age: 0, jitter: 0 })
    reach('serving', t)
    expect(t.clock.pending()).toEqual([])
  })

  it('successor connected: the old pool is told to drain (successor-ready) and the recycle counts as ok with its reason', () => {
    const t = setup()
    reach('serving', t)
    t.shard.transition({ type: 'recycle-due', reason: 'requests' })
    t.shard.transition({ type: 'connected', pool: t.pool(2) })
    expect(t.started[0]!.pool.told).toEqual(['drain-requested'])
    expect(t.recycles).toEqual([{ pool: 'pool1', reason: 'requests', outcome: 'ok' }])
    expect(t.shard.pool).toBe(t.pool(2))
    expect(t.clock.pending()).toEqual([1050]) // the successor's own age
  })

  it('successor failed: the old pool keeps serving and the next try waits the cooldown', () => {
    const t = setup({ cooldown: 5000 })
    reach('replacing', t)
    t.shard.transition({ type: 'connect-failed', pool: t.pool(2), error: new Error('refused') })
    expect(t.shard.pool).toBe(t.pool(1))
    expect(t.recycles).toEqual([{ pool: 'pool1', reason: 'age', outcome: 'failed' }])
    expect(t.clock.pending()).toEqual([5000])
    t.clock.advance(5000)
    expect(t.shard.state).toMatchObject({ name: 'replacing', reason: 'cooldown' })
  })

  it('an idle origin at the age: the pool drains without a successor and the shard idles', () => {
    const t = setup()
    reach('serving', t)
    t.world.idle = true
    t.clock.advance(1050)
    expect(t.shard.state.name).toBe('idle')
    expect(t.started).toHaveLength(1)
    expect(t.started[0]!.pool.told).toEqual(['drain-requested'])
  })

  it('a request-limit recycle happens even for an idle origin (the limit is not an age)', () => {
    const t = setup()
    reach('serving', t)
    t.world.idle = true
    t.shard.transition({ type: 'recycle-due', reason: 'requests' })
    expect(t.shard.state.name).toBe('replacing')
  })

  it('a connection that served, lost without demand: no reconnect, no timer; the next request brings it back', () => {
    const t = setup()
    reach('serving', t)
    t.started[0]!.pool.responses = 1
    t.world.demand = false
    t.shard.transition({ type: 'lost', pool: t.pool(1) })
    expect(t.shard.state.name).toBe('idle')
    expect(t.started).toHaveLength(1)
    expect(t.clock.pending()).toEqual([])
    t.shard.transition({ type: 'demand' })
    expect(t.started).toHaveLength(2)
  })

  it('a connection that never served, lost without demand: backs off first, and then stays idle', () => {
    const t = setup()
    reach('serving', t)
    t.world.demand = false
    t.shard.transition({ type: 'lost', pool: t.pool(1) })
    expect(t.shard.state.name).toBe('backoff')
    t.shard.transition({ type: 'demand' }) // a new request does not bring the attempt forward
    expect(t.started).toHaveLength(1)
    t.clock.advance(t.clock.pending()[0]!)
    expect(t.shard.state.name).toBe('idle')
    expect(t.started).toHaveLength(1)
  })

  it('GOAWAY on a pool that answered requests: replaced at once (with demand), its successor named', () => {
    const t = setup()
    reach('serving', t)
    t.started[0]!.pool.responses = 3
    t.shard.transition({ type: 'retired', pool: t.pool(1), reason: 'goaway' })
    expect(t.shard.state.name).toBe('connecting')
    expect(t.started[1]!.successorOf).toBe(t.started[0]!.pool)
  })

  it('GOAWAY on a pool that never answered: backs off, growing with each such loss (no storm)', () => {
    const t = setup()
    const delays: number[] = []
    reach('serving', t)
    for (let i = 0; i < 4; i++) {
      t.shard.transition({ type: 'retired', pool: t.shard.pool!, reason: 'goaway' })
      expect(t.shard.state.name).toBe('backoff')
      delays.push(t.clock.pending()[0]!)
      t.clock.advance(delays.at(-1)!)
      t.shard.transition({ type: 'connected', pool: t.shard.pool! })
    }
    expect(delays).toEqual([50, 100, 200, 400])
  })

  it('a loss after the backoff window (a long healthy life) forgives the earlier backoff', () => {
    const t = setup()
    reach('serving', t)
    t.shard.transition({ type: 'lost', pool: t.pool(1) })
    t.clock.advance(50)
    t.shard.transition({ type: 'connected', pool: t.pool(2) })
    t.started[1]!.pool.age = 1000 // the backoff's max: its window
    t.shard.transition({ type: 'lost', pool: t.pool(2) })
    expect(t.shard.state.name).toBe('connecting')
  })

  it('backoff-over without demand: idle, no connection', () => {
    const t = setup()
    reach('backoff', t)
    t.world.demand = false
    t.clock.advance(t.clock.pending()[0]!)
    expect(t.shard.state.name).toBe('idle')
    expect(t.started).toHaveLength(1)
  })

  it('connect-failed without demand: backs off all the same (the next request waits for the backoff)', () => {
    const t = setup()
    reach('connecting', t)
    t.world.demand = false
    t.shard.transition({ type: 'connect-failed', pool: t.pool(1), error: new Error('refused') })
    expect(t.shard.state.name).toBe('backoff')
    expect(t.clock.pending()).toEqual([50])
  })

  it('an event about a pool the shard gave up on changes nothing', () => {
    const t = setup()
    reach('serving', t)
    t.shard.transition({ type: 'recycle-due', reason: 'age' })
    t.shard.transition({ type: 'connected', pool: t.pool(2) })
    t.shard.transition({ type: 'lost', pool: t.pool(1) }) // the old pool, draining
    expect(t.shard.state).toMatchObject({ name: 'serving', pool: t.pool(2) })
  })

  for (const state of ['backoff', 'serving', 'replacing', 'finishing'] as const) {
    it(`closing from ${state} leaves no timer, and a successor connecting is told to stop`, () => {
      const t = setup()
      reach(state, t)
      t.shard.transition({ type: 'closing' })
      expect(t.clock.pending()).toEqual([])
      if (state === 'replacing') expect(t.started[1]!.pool.told).toEqual(['drain-requested'])
    })
  }

  for (const state of states) {
    it(`destroyed from ${state} leaves no timer`, () => {
      const t = setup()
      reach(state, t)
      t.shard.transition({ type: 'destroyed' })
      expect(t.shard.state.name).toBe('closed')
      expect(t.clock.pending()).toEqual([])
    })
  }

  it('finished: the finishing pool is told to drain', () => {
    const t = setup()
    reach('finishing', t)
    t.shard.transition({ type: 'finished' })
    expect(t.started[0]!.pool.told).toEqual(['drain-requested'])
  })

  it('an event raised while one is handled runs after it: a successor stopped by closing cannot bring back a timer', () => {
    const t = setup()
    reach('replacing', t)
    // The successor reports its failure from inside the shard's own 'closing' transition.
    ;(t.started[1]!.pool as unknown as { transition(event: PoolEvent): void }).transition = () =>
      t.shard.transition({ type: 'connect-failed', pool: t.pool(2), error: new Error('stopped') })
    t.shard.transition({ type: 'closing' })
    expect(t.shard.state.name).toBe('finishing')
    expect(t.clock.pending()).toEqual([])
  })
})

/**
 * The health of an origin's addresses (lib/health.ts) on a manual clock, no
 * socket: consecutive failures, ejection and its growing time, probation,
 * the cap on ejections, panic, slow start, timers.
 */
import diagnostics from 'node:diagnostics_channel'
import { afterEach, describe, expect, it } from 'vitest'
import type { ChannelMessages } from '../../lib/channels.js'
import { DECAY_SPANS, Health, Outcome, REFRESH_INTERVAL } from '../../lib/health.js'
import { defaults, type OutlierDetection, type SlowStart } from '../../lib/options.js'
import { ManualClock } from '../helpers/manual-clock.js'

const A = '10.0.0.1'
const B = '10.0.0.2'
const C = '10.0.0.3'
const D = '10.0.0.4'

function setup(
  options: { outliers?: Partial<OutlierDetection> | false; slowStart?: Partial<SlowStart> | false; age?: number } = {},
  addresses = [A, B, C, D],
) {
  const clock = new ManualClock()
  const events: string[] = []
  const totals = { ejections: 0 }
  const outlierDetection = options.outliers === false ? false : { ...defaults.outlierDetection, ...options.outliers }
  const slowStart = options.slowStart === false ? false : { ...defaults.slowStart, ...options.slowStart }
  const health = new Health('https://api.test:8443', { outlierDetection, slowStart, maxConnectionAge: options.age ?? 0 }, clock, totals, {
    ejected: (h) => events.push(`ejected ${h.address}`),
    returned: (h) => events.push(`returned ${h.address}`),
  })
  health.update(addresses)
  const of = (address: string) => health.get(address)!
  const fail = (address: string, times = 1, outcome: Outcome = Outcome.Failure) => {
    for (let i = 0; i < times; i++) health.record(address, outcome)
  }
  const succeed = (address: string) => health.record(address, Outcome.Success)
  return { clock, health, events, totals, of, fail, succeed }
}

const subscriptions: (() => void)[] = []
afterEach(() => {
  for (const unsubscribe of subscriptions.splice(0)) unsubscribe()
})
function listen<N extends keyof ChannelMessages>(name: N): ChannelMessages[N][] {
  const messages: ChannelMessages[N][] = []
  const handler = (message: unknown) => messages.push(message as ChannelMessages[N])
  diagnostics.subscribe(name, handler)
  subscriptions.push(() => diagnostics.unsubscribe(name, handler))
  return messages
}

describe('Health: consecutive failures', () => {
  it('the fifth failure in a row ejects the address (Envoy’s default); the fourth does not', () => {
    const t = setup()
    t.fail(A, 4)
    expect(t.of(A).ejected).toBe(false)
    expect(t.of(A).consecutiveFailures).toBe(4)
    t.fail(A)
    expect(t.of(A).ejected).toBe(true)
    expect(t.of(A).avoided).toBe(true)
    expect(t.events).toEqual([`ejected ${A}`])
    expect(t.totals.ejections).toBe(1)
  })

  it('a success in between starts the count again', () => {
    const t = setup()
    t.fail(A, 4)
    t.succeed(A)
    t.fail(A, 4)
    expect(t.of(A).ejected).toBe(false)
    expect(t.of(A).consecutiveFailures).toBe(4)
  })

  it('server errors count as failures by default; with countServerErrors off they are successes', () => {
    const on = setup()
    on.fail(A, 5, Outcome.ServerError)
    expect(on.of(A).ejected).toBe(true)
    const off = setup({ outliers: { countServerErrors: false } })
    off.fail(A, 4)
    off.fail(A, 1, Outcome.ServerError)
    expect(off.of(A).consecutiveFailures).toBe(0)
    off.fail(A, 4)
    expect(off.of(A).ejected).toBe(false)
  })

  it('an exchange with nothing to say (cancelled, unprocessed) changes nothing; nor does an address the lookup did not give', () => {
    const t = setup()
    t.fail(A, 4)
    t.fail(A, 3, Outcome.None)
    expect(t.of(A).consecutiveFailures).toBe(4)
    for (let i = 0; i < 10; i++) t.health.record('10.9.9.9', Outcome.Failure)
    expect(t.health.get('10.9.9.9')).toBeUndefined()
    expect(t.events).toEqual([])
  })

  it('consecutiveFailures is an option; outlierDetection: false never ejects', () => {
    const two = setup({ outliers: { consecutiveFailures: 2 } })
    two.fail(A, 2)
    expect(two.of(A).ejected).toBe(true)
    const off = setup({ outliers: false })
    off.fail(A, 100)
    expect(off.of(A).ejected).toBe(false)
    expect(off.events).toEqual([])
  })
})

describe('Health: ejection time', () => {
  it('base × multiplier, the multiplier growing with each ejection, capped at maxEjectionTime', () => {
    const t = setup({ outliers: { baseEjectionTime: 1000, maxEjectionTime: 2500 }, slowStart: false })
    const messages = listen('drainpipe:address:ejected')
    const durations: number[] = []
    for (let i = 0; i < 4; i++) {
      t.fail(A, 5)
      durations.push(t.clock.pending()[0]!)
      t.clock.advance(durations.at(-1)!)
      expect(t.of(A).ejected).toBe(false)
    }
    expect(durations).toEqual([1000, 2000, 2500, 2500])
    expect(messages.map((m) => m.duration)).toEqual([1000, 2000, 2500, 2500])
    expect(messages[0]).toMatchObject({ origin: 'https://api.test:8443', address: A, consecutiveFailures: 5, ejections: 1, panic: false })
    expect(t.of(A).ejections).toBe(4)
  })

  it('it comes back after its time: returned event, eligible again, in slow start', () => {
    const t = setup({ outliers: { baseEjectionTime: 1000 } })
    const returned = listen('drainpipe:address:returned')
    t.fail(A, 5)
    t.clock.advance(999)
    expect(t.of(A).state(t.clock.now())).toBe('ejected')
    t.clock.advance(1)
    expect(t.events).toEqual([`ejected ${A}`, `returned ${A}`])
    expect(returned).toEqual([{ origin: 'https://api.test:8443', address: A, ejections: 1 }])
    expect(t.of(A).avoided).toBe(false)
    expect(t.of(A).state(t.clock.now())).toBe('slow-start')
    expect(t.of(A).weight).toBeCloseTo(0.1)
  })

  it('back on probation: its next failure ejects it again at once, for longer; a success ends probation', () => {
    const t = setup({ outliers: { baseEjectionTime: 1000 } })
    t.fail(A, 5)
    t.clock.advance(1000)
    t.fail(A)
    expect(t.of(A).ejected).toBe(true)
    expect(t.clock.pending()).toContain(2000)
    t.clock.advance(2000)
    t.succeed(A)
    t.fail(A, 4)
    expect(t.of(A).ejected).toBe(false)
  })

  it('the multiplier decays by one for each DECAY_SPANS × base the address stays healthy', () => {
    const t = setup({ outliers: { baseEjectionTime: 1000, maxEjectionTime: 60_000 }, slowStart: false })
    const ejections = listen('drainpipe:address:ejected')
    for (let i = 0; i < 3; i++) {
      t.fail(A, 5)
      t.clock.advance(ejections.at(-1)!.duration)
      t.succeed(A)
    }
    expect(ejections.map((m) => m.duration)).toEqual([1000, 2000, 3000])
    t.clock.advance(2 * DECAY_SPANS * 1000)
    t.fail(A, 5)
    // 3 − 2 steps forgiven, + 1 for this ejection.
    expect(ejections.at(-1)!.duration).toBe(2000)
  })

  it('failures reported while it is ejected (its draining connection) change nothing', () => {
    const t = setup({ outliers: { baseEjectionTime: 1000 } })
    t.fail(A, 5)
    t.fail(A, 10)
    expect(t.of(A).ejections).toBe(1)
    expect(t.clock.pending()).toEqual([1000])
  })
})

describe('Health: how many may be ejected, panic', () => {
  it('maxEjectionPercent 50 of 4 addresses: two at most; the third failing one stays (failing)', () => {
    const t = setup()
    t.fail(A, 5)
    t.fail(B, 5)
    t.fail(C, 5)
    expect([A, B, C].map((address) => t.of(address).ejected)).toEqual([true, true, false])
    expect(t.of(C).consecutiveFailures).toBe(5)
    expect(t.health.panic).toBe(false)
  })

  it('at least one of two addresses, whatever the percentage; none of one; none with 0 %', () => {
    const two = setup({ outliers: { maxEjectionPercent: 10 } }, [A, B])
    two.fail(A, 5)
    expect(two.of(A).ejected).toBe(true)
    const one = setup({}, [A])
    one.fail(A, 50)
    expect(one.of(A).ejected).toBe(false)
    const zero = setup({ outliers: { maxEjectionPercent: 0 } })
    zero.fail(A, 50)
    expect(zero.of(A).ejected).toBe(false)
  })

  it('every address ejected or failing: panic, none is avoided; a success ends it', () => {
    const t = setup({}, [A, B])
    t.fail(A, 5)
    expect(t.of(A).avoided).toBe(true)
    t.fail(B, 5)
    expect(t.of(B).ejected).toBe(false)
    expect(t.health.panic).toBe(true)
    expect(t.of(A).avoided).toBe(false)
    t.succeed(B)
    expect(t.health.panic).toBe(false)
    expect(t.of(A).avoided).toBe(true)
  })

  it('maxEjectionPercent 100: all may be ejected, and then none is avoided', () => {
    const t = setup({ outliers: { maxEjectionPercent: 100 } }, [A, B])
    t.fail(A, 5)
    t.fail(B, 5)
    expect([t.of(A).ejected, t.of(B).ejected]).toEqual([true, true])
    expect(t.health.panic).toBe(true)
    expect([t.of(A).avoided, t.of(B).avoided]).toEqual([false, false])
  })
})

describe('Health: slow start', () => {
  it('the addresses of the first lookup start at full weight; one that appears later ramps from minWeight to 1 over the window', () => {
    const t = setup({ slowStart: { window: 1000, minWeight: 0.2 } }, [A])
    expect(t.of(A).weight).toBe(1)
    t.health.update([A, B])
    const weights = [t.of(B).weight]
    for (let i = 0; i < 5; i++) {
      t.clock.advance(2 * REFRESH_INTERVAL)
      weights.push(t.of(B).weight)
    }
    expect(weights.map((w) => Math.round(w * 100) / 100)).toEqual([0.2, 0.36, 0.52, 0.68, 0.84, 1])
    expect(t.of(B).state(t.clock.now())).toBe('healthy')
    // Refreshed on REFRESH_INTERVAL while it ramps, and not after.
    expect(t.clock.pending()).toEqual([])
  })

  it('with maxConnectionAge, a new address ramps over half an age at most (a scale-out stays balanced within 1.5 ages)', () => {
    const t = setup({ slowStart: { window: 5000, minWeight: 0.1 }, age: 800 }, [A])
    t.health.update([A, B])
    t.clock.advance(400)
    expect(t.of(B).weight).toBe(1)
  })

  it('an address returning from an ejection ramps over the whole window', () => {
    const t = setup({ outliers: { baseEjectionTime: 1000 }, slowStart: { window: 4000, minWeight: 0.1 }, age: 800 })
    t.fail(A, 5)
    t.clock.advance(1000)
    t.clock.advance(2000)
    expect(t.of(A).weight).toBeCloseTo(0.55)
  })

  it('slowStart: false: new and returning addresses get full weight at once', () => {
    const t = setup({ slowStart: false, outliers: { baseEjectionTime: 1000 } }, [A, B])
    t.health.update([A, B, C])
    expect(t.of(C).weight).toBe(1)
    t.fail(A, 5)
    t.clock.advance(1000)
    expect(t.of(A).weight).toBe(1)
  })

  it('an address that left the lookup is forgotten (its ejection timer too); back, it is new', () => {
    const t = setup({ outliers: { baseEjectionTime: 1000 } })
    t.fail(A, 5)
    t.health.update([B, C, D])
    expect(t.health.get(A)).toBeUndefined()
    expect(t.clock.pending()).toEqual([])
    t.health.update([A, B, C, D])
    expect(t.of(A).ejected).toBe(false)
    expect(t.of(A).state(t.clock.now())).toBe('slow-start')
  })
})

describe('Health: timers', () => {
  it('the weights refresh while a ramp runs, not after; close() leaves no timer, and nothing arms one after it', () => {
    const t = setup({ outliers: { baseEjectionTime: 1000 }, slowStart: { window: 300 } }, [A, B])
    t.health.update([A, B, C])
    expect(t.clock.pending()).toEqual([REFRESH_INTERVAL])
    t.clock.advance(300)
    expect(t.clock.pending()).toEqual([])
    t.fail(B, 5)
    expect(t.clock.pending()).toEqual([1000])
    t.health.close()
    expect(t.clock.pending()).toEqual([])
    t.health.update([A, B, C, D])
    t.fail(A, 5)
    expect(t.clock.pending()).toEqual([])
  })
})

describe('Health: stats', () => {
  it('per address: state, weight, latency, consecutive failures, ejections', () => {
    const t = setup({ outliers: { baseEjectionTime: 1000 } }, [A, B])
    t.fail(A, 5)
    t.fail(B, 2)
    expect(t.health.stats()).toEqual({
      [A]: { state: 'ejected', weight: 1, consecutiveFailures: 0, ejections: 1 },
      [B]: { state: 'healthy', weight: 1, consecutiveFailures: 2, ejections: 0 },
    })
  })
})

/**
 * What happens to the backends and to DNS, on the virtual clock. Each
 * scenario is a list of steps (start, drain, crash a backend; change what
 * DNS answers) and the changes after which the balance is timed.
 *
 * Times are in connection lives (`cycle` = maxConnectionAge + its jitter,
 * the longest a connection lives): a change comes once the fleet has gone
 * through two recycles, mid-way between recycle rounds, and the run goes on
 * for three lives after the last change, long enough to see it settle.
 */
import type { VirtualClock } from './clock.js'
import type { Metrics } from './metrics.js'
import type { Network, SimDns } from './network.js'

export interface World {
  readonly clock: VirtualClock
  readonly network: Network
  readonly dns: SimDns
  readonly metrics: Metrics
  /** The name every client resolves. */
  readonly host: string
}

export interface Step {
  readonly at: number
  /** Shown on the chart and in the report. */
  readonly label?: string
  run(world: World): void
}

/** A change after which the balance is timed, until `until`. */
export interface Change {
  readonly at: number
  readonly until: number
  readonly label: string
  /** Backends that joined DNS at the change: how fast they get their share is timed too. */
  readonly joined: readonly string[]
}

export interface Scenario {
  readonly name: ScenarioName
  /** One line, for the report and the chart. */
  readonly description: string
  /** Backends up and in DNS at the start. */
  readonly initial: readonly string[]
  readonly steps: readonly Step[]
  readonly changes: readonly Change[]
  /** Until then the fleet is starting up: steady-state figures are taken after it. */
  readonly warmup: number
  readonly duration: number
}

export const scenarioNames = ['steady', 'scale-out', 'rolling-restart', 'recovery', 'dns-outage', 'demo'] as const
export type ScenarioName = (typeof scenarioNames)[number]

export interface ScenarioParameters {
  /** Backends at the start. */
  backends: number
  /** maxConnectionAge + maxConnectionAgeJitter (ms). */
  cycle: number
  /** The clients' own start-up (ms): the fleet is deployed over this span. */
  startSpread: number
  /** scale-out: backends after it. Default twice `backends`. */
  scaleTo?: number
  /** rolling-restart: ms between two backends' restarts. Default 10 s. */
  restartInterval?: number
  /** recovery: how long the backend is down (ms). Default 60 s. */
  outage?: number
  /** dns-outage: how long DNS fails (ms). Default one cycle. */
  dnsOutage?: number
  /** dns-outage: SERVFAIL at once, or no answer at all. Default 'servfail'. */
  dnsFailure?: 'servfail' | 'timeout'
  /** demo: when its four changes happened in a real run (ms), instead of the plan's 2.5, 7.5, 9 and 10.5 ages. */
  demoTimes?: DemoTimes
}

/** The demo's changes: scale-out, the backend leaving DNS, stopping, coming back. */
export interface DemoTimes {
  scaleOut: number
  leave: number
  stop: number
  back: number
}

/** Backend addresses of a pod network: 10.0.0.1, 10.0.0.2, … (`offset` numbers a second generation, after a restart). */
export function addresses(count: number, offset = 0): string[] {
  return Array.from({ length: count }, (_, i) => {
    const n = offset + i + 1
    return `10.0.${Math.floor(n / 250)}.${n % 250}`
  })
}

const set = (addresses: readonly string[]) => (world: World) => world.dns.set(world.host, addresses)

export function buildScenario(name: ScenarioName, parameters: ScenarioParameters): Scenario {
  const { backends, cycle, startSpread } = parameters
  const initial = addresses(backends)
  const warmup = startSpread + 2 * cycle
  // Mid-way between two recycle rounds of a fleet deployed at once.
  const change = startSpread + 2.5 * cycle
  switch (name) {
    case 'steady': {
      const end = warmup + 4 * cycle
      // No change: the balance is timed from the end of the warm-up, and what it settles at is the fleet's floor.
      return {
        name,
        description: `${backends} backends, nothing changes`,
        initial,
        steps: [],
        changes: [{ at: warmup, until: end, label: 'steady state', joined: [] }],
        warmup,
        duration: end,
      }
    }
    case 'scale-out': {
      const to = parameters.scaleTo ?? 2 * backends
      const added = addresses(to - backends, backends)
      const all = [...initial, ...added]
      const end = change + 3 * cycle
      return {
        name,
        description: `scale-out ${backends} → ${to} backends`,
        initial,
        steps: [
          {
            at: change,
            label: `scale-out ${backends} → ${to}`,
            run: (world) => {
              for (const address of added) world.network.start(address)
              set(all)(world)
            },
          },
        ],
        changes: [{ at: change, until: end, label: `scale-out ${backends} → ${to}`, joined: added }],
        warmup,
        duration: end,
      }
    }
    case 'rolling-restart': {
      const interval = parameters.restartInterval ?? 10_000
      const fresh = addresses(backends, backends)
      const steps: Step[] = []
      let current = [...initial]
      for (let i = 0; i < backends; i++) {
        const old = initial[i]!
        const replacement = fresh[i]!
        current = current.map((address) => (address === old ? replacement : address))
        const now = [...current]
        // A new pod is ready (in DNS), then the old one leaves DNS and drains: GOAWAY, finish, close.
        steps.push({
          at: change + i * interval,
          ...(i === 0 ? { label: `rolling restart: 1 backend every ${interval / 1000} s` } : {}),
          ...(i === backends - 1 ? { label: 'last backend restarted' } : {}),
          run: (world) => {
            world.network.start(replacement)
            set(now)(world)
            world.network.drain(old)
          },
        })
      }
      const last = change + (backends - 1) * interval
      const end = last + 3 * cycle
      return {
        name,
        description: `rolling restart of ${backends} backends, one every ${interval / 1000} s, each at a new address`,
        initial,
        steps,
        changes: [{ at: last, until: end, label: 'after the last restart', joined: [] }],
        warmup,
        duration: end,
      }
    }
    case 'recovery': {
      const outage = parameters.outage ?? 60_000
      const victim = initial[0]!
      const others = initial.slice(1)
      // Readiness takes a while to notice: the dead backend stays in DNS for 10 s (or the outage, if shorter).
      const noticed = Math.min(10_000, outage)
      const back = change + outage
      const end = back + 3 * cycle
      return {
        name,
        description: `${victim} crashes, is down for ${outage / 1000} s and comes back at the same address (${backends} backends)`,
        initial,
        steps: [
          { at: change, label: `${victim} crashes`, run: (world) => world.network.crash(victim) },
          { at: change + noticed, run: set(others) },
          {
            at: back,
            label: `${victim} back`,
            run: (world) => {
              world.network.start(victim)
              set(initial)(world)
            },
          },
        ],
        changes: [{ at: back, until: end, label: `${victim} back`, joined: [victim] }],
        warmup,
        duration: end,
      }
    }
    case 'dns-outage': {
      const length = parameters.dnsOutage ?? cycle
      const failure = parameters.dnsFailure ?? 'servfail'
      const over = change + length
      const end = over + 3 * cycle
      return {
        name,
        description: `DNS fails (${failure === 'servfail' ? 'SERVFAIL' : 'no answer'}) for ${length / 1000} s (${backends} backends)`,
        initial,
        steps: [
          { at: change, label: 'DNS fails', run: (world) => (world.dns.mode = failure) },
          { at: over, label: 'DNS answers again', run: (world) => (world.dns.mode = 'answer') },
        ],
        changes: [{ at: over, until: end, label: 'DNS answers again', joined: [] }],
        warmup,
        duration: end,
      }
    }
    case 'demo':
      return demoScenario(cycle, parameters.demoTimes)
  }
}

/**
 * The scene of `npm run demo` (examples/demo/run.ts), in its own units: A is
 * the connection age (3 s; 1 s with --quick). Backends on 127.0.0.2…7.
 */
function demoScenario(cycle: number, times: DemoTimes | undefined): Scenario {
  // The demo's jitter is the default, 10 % of the age.
  const age = cycle / 1.1
  const hosts = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6', '127.0.0.7']
  const gone = hosts[2]!
  const plan = { ...(times ?? { scaleOut: 2.5 * age, leave: 7.5 * age, stop: 9 * age, back: 10.5 * age }), end: 14.5 * age }
  return {
    name: 'demo',
    description: `the demo's scene: 3 → 6 backends, then ${gone} leaves DNS, stops (GOAWAY) and comes back`,
    initial: hosts.slice(0, 3),
    steps: [
      {
        at: plan.scaleOut,
        label: 'scale-out 3 → 6',
        run: (world) => {
          for (const host of hosts.slice(3)) world.network.start(host)
          set(hosts)(world)
        },
      },
      { at: plan.leave, label: `${gone} out of DNS`, run: set(hosts.filter((host) => host !== gone)) },
      { at: plan.stop, label: `${gone} stops`, run: (world) => world.network.drain(gone) },
      {
        at: plan.back,
        label: `${gone} back`,
        run: (world) => {
          world.network.start(gone)
          set(hosts)(world)
        },
      },
    ],
    changes: [
      { at: plan.scaleOut, until: plan.leave, label: 'scale-out 3 → 6', joined: hosts.slice(3) },
      { at: plan.back, until: plan.end, label: `${gone} back`, joined: [gone] },
    ],
    warmup: 2 * cycle,
    duration: plan.end,
  }
}

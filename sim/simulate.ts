/**
 * One simulation run: a fleet of real drainpipe clients, simulated backends
 * and DNS, a scenario, all on one virtual clock; then the figures.
 */
import { performance } from 'node:perf_hooks'
import type { ClientOptions } from '../lib/options.js'
import {
  changeFigures,
  connectionFigures,
  handshakeFigures,
  type ChangeFigures,
  type ConnectionFigures,
  type HandshakeFigures,
} from './analysis.js'
import { VirtualClock } from './clock.js'
import { Fleet } from './fleet.js'
import { Metrics } from './metrics.js'
import { Network, type DnsOrder } from './network.js'
import { seededRandom } from './random.js'
import { buildScenario, type DemoTimes, type Scenario, type ScenarioName, type ScenarioParameters, type World } from './scenarios.js'

export interface SimulationOptions {
  scenario: ScenarioName
  clients: number
  /** Backends at the start. */
  backends: number
  /** The clients' `count`: connections per client. */
  count: number
  /** `maxConnectionAge` (ms). */
  age: number
  /** `maxConnectionAgeJitter` as a fraction of the age (0.1: drainpipe's default). */
  jitter: number
  /** Requests per second per client. */
  rate: number
  arrivals: 'paced' | 'poisson'
  /**
   * The clients start over this span (ms), evenly. Undefined: one connection
   * life (age + jitter), a fleet whose recycles are spread over time; shorter
   * is a deploy of the whole fleet at once, whose recycles come in waves.
   */
  startSpread: number | undefined
  /** Network and backends (ms); see sim/network.ts. */
  serviceTime: number
  handshake: number
  /** Measured connect times to draw from instead of `handshake` (a real run's). */
  handshakeSamples: number[]
  rtt: number
  dnsLatency: number
  maxConcurrentStreams: number
  dnsOrder: DnsOrder
  seed: number
  /** Resolution of every time series (ms). */
  bucket: number
  /** The window over which shares are measured (ms). */
  window: number
  /** Balanced: max/min share ≤ bound. */
  bound: number
  /** Backends that joined have caught up at this fraction of the even share. */
  catchUp: number
  /** Scenario-specific parameters (scale-out target, restart interval, outage lengths). */
  scene: Partial<Omit<ScenarioParameters, 'backends' | 'cycle' | 'startSpread'>>
  /** Further client options (reconnectBackoff, recycleCooldown, …). */
  client: ClientOptions
}

export interface SimulationResult {
  options: SimulationOptions
  scenario: { name: ScenarioName; description: string; duration: number; warmup: number }
  events: { t: number; label: string }[]
  changes: ChangeFigures[]
  /** After the warm-up; `formula` is clients × count / (mean connection life) / backends. */
  handshakes: HandshakeFigures & { formula: number }
  /** During the fleet's start-up and first recycles. */
  startup: HandshakeFigures
  connections: ConnectionFigures
  requests: { sent: number; coldStarts: number; waited: number; longestWait: number; failed: number; failures: Record<string, number> }
  lifecycle: { recyclesOk: number; recyclesFailed: number; goaways: number; retries: number; lookups: number; lookupFailures: number }
  cost: { wallMs: number; cpuMs: number; timers: number; drains: number; heapMB: number }
  metrics: Metrics
}

const HOST = 'api.svc.cluster.local'

export const defaults: SimulationOptions = {
  scenario: 'scale-out',
  clients: 100,
  backends: 20,
  count: 4,
  age: 60_000,
  jitter: 0.1,
  rate: 10,
  arrivals: 'paced',
  startSpread: undefined,
  serviceTime: 20,
  handshake: 10,
  handshakeSamples: [],
  rtt: 1,
  dnsLatency: 1,
  maxConcurrentStreams: 100,
  dnsOrder: 'shuffle',
  seed: 1,
  bucket: 1000,
  window: 6000,
  bound: 1.2,
  catchUp: 0.9,
  scene: {},
  client: {},
}

export async function simulate(given: Partial<SimulationOptions>, progress?: (done: number) => void): Promise<SimulationResult> {
  const options: SimulationOptions = { ...defaults, ...given }
  const jitter = Math.round(options.age * options.jitter)
  const startSpread = options.startSpread ?? options.age + jitter
  const scenario: Scenario = buildScenario(options.scenario, {
    backends: options.backends,
    cycle: options.age + jitter,
    startSpread,
    ...options.scene,
  })
  const started = performance.now()
  const cpu = process.cpuUsage()
  const clock = new VirtualClock()
  const random = seededRandom(options.seed)
  const metrics = new Metrics(scenario.duration, options.bucket)
  // The run ends with its last bucket, so that every bucket is whole.
  const end = metrics.length * options.bucket
  const network = new Network(clock, metrics, options, random)
  const dns = network.dns({ order: options.dnsOrder, random })
  const world: World = { clock, network, dns, metrics, host: HOST }

  for (const address of scenario.initial) network.start(address)
  dns.set(HOST, scenario.initial)
  for (const step of scenario.steps) {
    clock.setTimeout(() => {
      step.run(world)
      if (step.label !== undefined) metrics.events.push({ t: clock.now(), label: step.label })
    }, step.at)
  }
  // Open connections per backend, at the end of every bucket.
  let sampled = 0
  const sample = () => {
    network.sample(sampled++)
    if (sampled < metrics.length) clock.setTimeout(sample, options.bucket)
  }
  clock.setTimeout(sample, options.bucket - 1e-6)

  const fleet = new Fleet(clock, network, dns, metrics, random, {
    clients: options.clients,
    origin: `https://${HOST}`,
    client: { ...options.client, count: options.count, maxConnectionAge: options.age, maxConnectionAgeJitter: jitter },
    rate: options.rate,
    arrivals: options.arrivals,
    startSpread,
    until: end,
  })

  const slices = 50
  for (let i = 1; i <= slices; i++) {
    await clock.run((end * i) / slices)
    progress?.(i / slices)
  }

  const used = process.cpuUsage(cpu)
  const samples = options.handshakeSamples
  const handshake = samples.length === 0 ? options.handshake : samples.reduce((a, b) => a + b, 0) / samples.length
  const life = options.age + jitter / 2 + options.dnsLatency + handshake
  const steady = handshakeFigures(metrics, scenario.warmup, end)
  const lifecycle = { recyclesOk: 0, recyclesFailed: 0, goaways: 0, retries: 0, lookups: dns.lookups, lookupFailures: dns.failures }
  for (const client of fleet.clients) {
    const stats = client.stats()
    lifecycle.recyclesOk += stats.recycles.ok
    lifecycle.recyclesFailed += stats.recycles.failed
    lifecycle.goaways += stats.goaways
    lifecycle.retries += stats.retries
  }
  const measure = { window: options.window, bound: options.bound, catchUp: options.catchUp, cycle: options.age + jitter }
  return {
    options,
    scenario: { name: scenario.name, description: scenario.description, duration: end, warmup: scenario.warmup },
    events: metrics.events,
    changes: scenario.changes.map((change) => changeFigures(metrics, change, measure)),
    handshakes: { ...steady, formula: (options.clients * options.count) / (life / 1000) / steady.backends },
    startup: handshakeFigures(metrics, 0, scenario.warmup),
    connections: connectionFigures(metrics),
    requests: {
      sent: metrics.requests,
      coldStarts: metrics.coldStarts,
      waited: metrics.waited,
      longestWait: metrics.longestWait,
      failed: metrics.failed,
      failures: Object.fromEntries(metrics.failures),
    },
    lifecycle,
    cost: {
      wallMs: performance.now() - started,
      cpuMs: (used.user + used.system) / 1000,
      timers: clock.fired, drains: clock.drains, heapMB: process.memoryUsage().heapUsed / 2 ** 20 },
    metrics,
  }
}

/**
 * Measurement that fits the fleet: shares over a tenth of a connection's
 * life (1 s to 1 min), and a request rate that gives each backend about 300
 * requests per window (paced requests split over a client's connections in
 * turn, so a window's counts follow the connections closely), with at least
 * 20 requests per connection life so that no client's origin is ever idle.
 */
export function autoMeasure(options: SimulationOptions): { window: number; rate: number } {
  const cycle = options.age * (1 + options.jitter)
  const window = Math.min(60_000, Math.max(1000, Math.round(cycle / 10 / options.bucket) * options.bucket))
  const backends = options.scenario === 'scale-out' ? (options.scene.scaleTo ?? 2 * options.backends) : options.backends
  const rate = Math.max((300 * backends) / (options.clients * (window / 1000)), 20 / (cycle / 1000))
  return { window, rate: Number(rate.toPrecision(3)) }
}

/**
 * The demo's scene and options (examples/demo/run.ts): one client, count 6,
 * maxConnectionAge 3 s (1 s with --quick) with the default jitter, 800
 * requests/s; backends that answer in about a millisecond and allow
 * node:http2's default of streams; DNS answers in the order set, as the
 * in-repo DNS server does; balance over 1 s windows in 100 ms steps.
 * `handshake` is the whole connect (lookup included): pass what the real run
 * measured (`handshakeSamples`, its connect times), it moves every recycle
 * round.
 */
export function demoOptions({
  quick,
  count = 6,
  handshake = defaults.handshake,
  handshakeSamples = [],
  times,
}: {
  quick: boolean
  count?: number
  handshake?: number
  handshakeSamples?: number[]
  /** When the changes happened in the real run (its start of servers and DNS updates take a moment). */
  times?: DemoTimes
}): SimulationOptions {
  return {
    ...defaults,
    scenario: 'demo',
    clients: 1,
    backends: 3,
    count,
    age: quick ? 1000 : 3000,
    jitter: 0.1,
    rate: 800,
    arrivals: 'paced',
    startSpread: 0,
    serviceTime: 1,
    handshake,
    handshakeSamples,
    rtt: 0.2,
    dnsLatency: 0,
    maxConcurrentStreams: 2 ** 32 - 1,
    dnsOrder: 'fixed',
    bucket: 100,
    window: 1000,
    scene: times === undefined ? {} : { demoTimes: times },
  }
}

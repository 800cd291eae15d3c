/**
 * Client-side load balancing under steady load, with real (small) connection ages:
 *
 * - a headless service (the name resolves to every backend): the origin's `count` pools spread
 *   over the addresses, every recycle resolves afresh, so a scale-out gets pools on the new
 *   backends and an address removed from DNS loses its pools at the next lookup;
 * - a VIP (one address; haproxy in TCP mode, round robin, in front of the backends): recycling
 *   alone rebalances, since every new connection may land on another backend.
 *
 * The headless scenarios run with a table lookup, with `resolverLookup` against the in-repo DNS
 * server, and with `resolverLookup` against a real dnsmasq.
 *
 * Balance is measured on the requests: every response carries `x-backend`; in a time window after
 * the change, max/min of the per-backend request counts (equivalently, of the shares) must be ≤ 1.2
 * from 1.5 × the connection age on. No request may fail.
 */
import diagnostics from 'node:diagnostics_channel'
import { performance } from 'node:perf_hooks'
import { setTimeout as delay } from 'node:timers/promises'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { Client, resolverLookup, type ChannelMessages, type LookupFunction, type PoolStats } from '../lib/index.js'
import { startDnsServer } from './helpers/dns-server.js'
import { DNSMASQ_BINARY, startDnsmasq, type Dnsmasq } from './helpers/dnsmasq.js'
import { Fleet, type FleetOptions } from './helpers/fleet.js'
import { tableLookup } from './helpers/h2-server.js'
import { HAPROXY_BINARY, startHaproxy } from './helpers/haproxy.js'
import { Load, type Window } from './helpers/load.js'
import { pki } from './helpers/pki.js'
import { requires, until } from './helpers/processes.js'

/** The connection age of the balance scenarios (ms). */
const AGE = 800
/** max/min of the per-backend request counts. */
const BOUND = 1.2
/** Requests in flight at most: a multiple of `count`, so that the workers can spread evenly over the pools. */
const CONCURRENCY = 24
/** Requests per second: paced, so that a test file running alongside does not starve this one (or the reverse). */
const RATE = 1200
const COUNT = 6
const NAME = 'api.test'

// ── DNS: the same scenarios behind three resolvers ─────────────────────────

interface Dns {
  lookup: LookupFunction
  /** Serve these addresses for NAME; resolves once the next lookup sees them. */
  set(hosts: string[]): Promise<void>
  close(): Promise<void>
}

interface Resolver {
  title: string
  /** The scenarios cannot run here (a binary they need is missing). */
  skip: boolean
  /** Appended to the describe title, naming why they are skipped. */
  note: string
  start(hosts: string[]): Promise<Dns>
}

const table: Resolver = {
  title: 'tableLookup',
  skip: false,
  note: '',
  async start(hosts) {
    const dns = tableLookup({ [NAME]: hosts })
    return {
      lookup: dns.lookup,
      set: async (next) => dns.set(NAME, next),
      close: async () => {},
    }
  },
}

/**
 * The documented use: `lookup: resolverLookup({ servers })`. (`npm run typecheck` flags this line while
 * lib's `Lookup` type is not assignable to `LookupFunction`, the type of the `lookup` option.)
 */
function viaDnsServer(server: string): LookupFunction {
  return resolverLookup({ servers: [server] })
}

const inRepoDns: Resolver = {
  title: 'resolverLookup and the in-repo DNS server',
  skip: false,
  note: '',
  async start(hosts) {
    const server = await startDnsServer()
    server.setRecords(NAME, hosts)
    return {
      lookup: viaDnsServer(server.server),
      set: async (next) => server.setRecords(NAME, next),
      close: () => server.close(),
    }
  },
}

// Skipped where dnsmasq-base is missing, except in CI, where the scenarios must run (and fail).
const dnsmasqBinary = requires(DNSMASQ_BINARY, 'dnsmasq-base')
const dnsmasq: Resolver = {
  title: 'resolverLookup and dnsmasq',
  note: dnsmasqBinary.note,
  skip: dnsmasqBinary.skip,
  async start(hosts) {
    dnsmasqBinary.check()
    const server: Dnsmasq = await startDnsmasq({ records: { [NAME]: hosts } })
    return {
      lookup: viaDnsServer(server.server),
      // Resolves once dnsmasq answers with the new records.
      set: (next) => server.setRecords(NAME, next),
      close: () => server.close(),
    }
  },
}

// ── Scenario harness ───────────────────────────────────────────────────────

interface Running {
  fleet: Fleet
  dns: Dns
  client: Client
  origin: string
  load: Load
}

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** Starts backends, DNS, a drainpipe client and steady load; everything is stopped after the test. */
async function start(
  resolver: Resolver,
  backends: number,
  options: {
    age?: number
    jitter?: number
    fleet?: FleetOptions
    concurrency?: number
    /** The client's random source (for the age jitter). */
    random?: () => number
    /** Wraps the resolver's lookup (to observe it). */
    wrap?: (lookup: LookupFunction) => LookupFunction
  } = {},
): Promise<Running> {
  const fleet = await Fleet.start(backends, options.fleet)
  cleanups.push(() => fleet.close())
  const dns = await resolver.start(fleet.hosts)
  cleanups.push(() => dns.close())
  const client = new Client({
    count: COUNT,
    maxConnectionAge: options.age ?? AGE,
    ...(options.jitter === undefined ? {} : { maxConnectionAgeJitter: options.jitter }),
    ...(options.random === undefined ? {} : { random: options.random }),
    connect: { ca: pki.ca },
    lookup: options.wrap ? options.wrap(dns.lookup) : dns.lookup,
  })
  cleanups.push(() => client.destroy())
  const origin = `https://${NAME}:${fleet.port}`
  const load = startLoad(client, origin, options.concurrency ?? CONCURRENCY)
  cleanups.push(() => load.stop())
  await warm(client, origin, load)
  return { fleet, dns, client, origin, load }
}

function startLoad(client: Client, origin: string, concurrency: number): Load {
  return new Load(
    async () => {
      const response = await client.request(`${origin}/hello`)
      const body = await response.body.text()
      if (response.statusCode !== 200 || body !== 'hello') throw new Error(`Unexpected answer ${response.statusCode}: ${body}`)
      return String(response.headers['x-backend'])
    },
    { concurrency, rate: RATE, maxDuration: 20_000 },
  ).start()
}

/** Lets time pass until `instant` (a measurement window, not synchronisation). */
async function reach(instant: number): Promise<void> {
  const left = instant - performance.now()
  if (left > 0) await delay(left)
}

function pools(client: Client, origin: string): PoolStats[] {
  return client.stats().origins[origin]?.pools ?? []
}

/** Pools that take or will take requests (not draining, not closed). */
const live = (pool: PoolStats) => pool.state === 'open' || pool.state === 'recycling' || pool.state === 'connecting'

/** All `count` pools are up and requests are flowing. */
async function warm(client: Client, origin: string, load: Load): Promise<void> {
  await until(
    () => {
      if (load.failed > 0) throw load.failures[0]!.error
      return pools(client, origin).filter((pool) => pool.state === 'open').length === COUNT && load.ok > 0
    },
    `${COUNT} pools are open and requests flow`,
    10_000,
  )
}

/** The windows [from + k·width, from + (k+1)·width) until `to`, over the expected backends. */
function windows(load: Load, from: number, to: number, width: number, expected: string[]): Window[] {
  const result: Window[] = []
  for (let at = from; at + width <= to + 1e-6; at += width) result.push(load.window(at, at + width, expected))
  return result
}

function show(windows: Window[], since: number, age: number): string {
  return windows
    .map((w) => `[${((w.from - since) / age).toFixed(2)}A, ${((w.to - since) / age).toFixed(2)}A) ratio ${w.ratio.toFixed(2)} ${JSON.stringify(w.counts)}`)
    .join('\n')
}

/** Requests per backend a balance measurement needs, so that counting noise stays well inside the bound. */
const SAMPLES_PER_BACKEND = 200

/**
 * After a change at `since`: the requests from 1.5 × age on are balanced over `expected`. The window
 * runs at least to 2.5 × age, and on until it holds SAMPLES_PER_BACKEND requests per backend (a slow,
 * busy machine sends fewer requests per second; at most until 8 × age).
 */
async function expectBalancedWithin(load: Load, since: number, expected: string[], age = AGE): Promise<void> {
  const from = since + 1.5 * age
  const needed = expected.length * SAMPLES_PER_BACKEND
  await reach(since + 2.5 * age)
  await until(() => load.window(from, performance.now()).total >= needed, `${needed} requests since 1.5 × age`, 5.5 * age).catch(() => {})
  const window = load.window(from, performance.now(), expected)
  const report = `per-backend requests after the change:\n${show([window], since, age)}\nbefore:\n${show(
    windows(load, since - age, from, 0.5 * age, expected),
    since,
    age,
  )}`
  console.log(`balance from 1.5 × age: max/min ${window.ratio.toFixed(2)} over ${window.total} requests`)
  expect(window.total, report).toBeGreaterThanOrEqual(needed)
  expect(window.ratio, report).toBeLessThanOrEqual(BOUND)
}

function expectNoFailures(load: Load): void {
  expect(load.failures.map((failure) => failure.error.message)).toEqual([])
}

function subscribe<N extends keyof ChannelMessages>(name: N, listener: (message: ChannelMessages[N]) => void): void {
  const handler = (message: unknown) => listener(message as ChannelMessages[N])
  diagnostics.subscribe(name, handler)
  cleanups.push(async () => {
    diagnostics.unsubscribe(name, handler)
  })
}

/** Wraps a lookup to record when each answer arrived and what it held. */
function observed(lookup: LookupFunction): { lookup: LookupFunction; answers: { at: number; addresses: string[] }[] } {
  const answers: { at: number; addresses: string[] }[] = []
  return {
    answers,
    lookup: (hostname, options, callback) =>
      lookup(hostname, options, (error, addresses) => {
        const list = typeof addresses === 'string' ? [addresses] : addresses.map((entry) => entry.address)
        answers.push({ at: performance.now(), addresses: error ? [] : list })
        callback(error, addresses)
      }),
  }
}

// ── Scenarios ──────────────────────────────────────────────────────────────

/** Scale-out 3 → 6 under load: balanced over the six within 1.5 × age. */
async function scaleOut(resolver: Resolver): Promise<void> {
  const { fleet, dns, load } = await start(resolver, 3)
  await fleet.scaleTo(6)
  await dns.set(fleet.hosts)
  const since = performance.now()
  await expectBalancedWithin(load, since, fleet.hosts)
  await load.stop()
  expectNoFailures(load)
}

/**
 * A backend leaves DNS (its pools go), stops as a terminating pod does, starts again and comes back
 * into DNS: balanced over the six within 1.5 × age of its return.
 */
async function recovery(resolver: Resolver): Promise<void> {
  const { fleet, dns, client, origin, load } = await start(resolver, 6)
  const all = fleet.hosts
  const gone = all[2]!
  await dns.set(all.filter((host) => host !== gone))
  await until(() => !pools(client, origin).some((pool) => live(pool) && pool.address === gone), `no pool is left on ${gone}`, 3 * AGE)
  await fleet.stop(gone)
  await fleet.startAt(gone)
  await dns.set(all)
  const since = performance.now()
  await expectBalancedWithin(load, since, all)
  await load.stop()
  expectNoFailures(load)
}

/**
 * An address removed from DNS loses its pools at the next lookup of the origin (make-before-break),
 * long before their age. The ages are spread evenly over [age, 2 × age] (jitter = age, a cycling
 * random source), so some pool recycles (and looks the name up) every sixth of an age or so; the
 * removed address is the one a pool has just connected to, so its own age is far off.
 */
async function removal(resolver: Resolver): Promise<void> {
  const age = 600
  let draw = 0
  let lookups: ReturnType<typeof observed> | undefined
  const { fleet, dns, client, origin, load } = await start(resolver, 6, {
    age,
    jitter: age,
    random: () => (draw++ % COUNT) / COUNT,
    wrap: (lookup) => (lookups = observed(lookup)).lookup,
  })

  const connects: { at: number; id: number; address: string | undefined }[] = []
  const drains: { at: number; id: number; address: string | undefined; reason: string }[] = []
  subscribe('drainpipe:pool:connect', (m) => m.origin === origin && connects.push({ at: performance.now(), id: m.id, address: m.address }))
  subscribe('drainpipe:pool:drain', (m) => m.origin === origin && drains.push({ at: performance.now(), id: m.id, address: m.address, reason: m.reason }))

  // A pool that has just connected (a recycle).
  await until(() => connects.length > 0, 'a recycle', 3 * age)
  const fresh = connects[0]!
  const gone = fresh.address!
  await dns.set(fleet.hosts.filter((host) => host !== gone))
  const removedAt = performance.now()

  const timeline = () => {
    const at = (t: number) => `${(t - removedAt).toFixed(0)} ms`
    return [
      `removed ${gone} (pool ${fresh.id} connected at ${at(fresh.at)})`,
      ...connects.map((c) => `${at(c.at)} connect pool ${c.id} ${c.address}`),
      ...drains.map((d) => `${at(d.at)} drain pool ${d.id} ${d.address} (${d.reason})`),
      ...lookups!.answers.filter((a) => a.at >= fresh.at).map((a) => `${at(a.at)} lookup: ${a.addresses.join(' ')}`),
      ...pools(client, origin).map((p) => `now: pool ${p.id} shard ${p.shard} ${p.address} ${p.state}, age ${p.age.toFixed(0)} ms`),
    ].join('\n')
  }
  await until(() => !pools(client, origin).some((pool) => live(pool) && pool.address === gone), `no pool is left on ${gone}`, age).catch(
    (error: Error) => {
      throw new Error(`${error.message}\n${timeline()}`)
    },
  )
  const goneAt = performance.now()
  await load.stop()

  const nextLookup = lookups!.answers.find((answer) => answer.at >= removedAt && !answer.addresses.includes(gone))
  expect(nextLookup, `a lookup after the removal\n${timeline()}`).toBeDefined()
  const drained = drains.filter((drain) => drain.address === gone && drain.at >= removedAt)
  expect(drained.map((drain) => drain.id)).toContain(fresh.id)
  for (const drain of drained) expect(drain.reason).toBe('successor-ready')
  // The pool that connected just before the removal is recycled because of the lookup (successor
  // first), not because of its age; older pools on that address may have reached their age meanwhile.
  const freshDrain = drained.find((drain) => drain.id === fresh.id)!
  expect(freshDrain.at).toBeGreaterThanOrEqual(nextLookup!.at)
  expect(freshDrain.at - nextLookup!.at, 'from the lookup to the drain (a successor connects)').toBeLessThan(age)
  // Its age limit is at least `age` (age + jitter): gone before that, it was evicted, not aged out.
  expect(goneAt - fresh.at, `age of the evicted pool\n${timeline()}`).toBeLessThan(age)
  expect(connects.filter((connect) => connect.at >= removedAt && connect.address === gone)).toEqual([])
  expect(pools(client, origin).filter((pool) => live(pool) && pool.address === gone)).toEqual([])
  expectNoFailures(load)
}

// ── Tests ──────────────────────────────────────────────────────────────────

for (const resolver of [table, inRepoDns, dnsmasq]) {
  describe.skipIf(resolver.skip)(`headless service through ${resolver.title}${resolver.note}`, () => {
    it('scale-out 3 → 6 under load: max/min share ≤ 1.2 within 1.5 × age, 0 failed', () => scaleOut(resolver))
    it('a backend removed from DNS, stopped and restored: ≤ 1.2 within 1.5 × age of its return, 0 failed', () => recovery(resolver))
    it('an address removed from DNS loses its pools at the next lookup, not at their age, 0 failed', () => removal(resolver))
  })
}

describe('headless service: spreading while recycles overlap', () => {
  it('pools replacing each other at the same time do not pile onto one address (successors connect slowly)', async () => {
    // Connects take 150 ms, so every pool of a recycle round resolves before any successor is up.
    const { fleet, dns, client, origin } = await start(table, 3, { age: 400, jitter: 0, fleet: { acceptDelay: 150 } })
    await fleet.scaleTo(6)
    await dns.set(fleet.hosts)
    const before = Math.max(...pools(client, origin).map((pool) => pool.id))
    // One round: every shard replaced by a pool that resolved after the change.
    await until(
      () => {
        const current = pools(client, origin)
        return current.filter((pool) => pool.id > before && pool.state === 'open').length === COUNT && !current.some((pool) => pool.id <= before && live(pool))
      },
      'every shard has recycled once since the change',
      5000,
    )
    const byAddress: Record<string, number> = Object.fromEntries(fleet.hosts.map((host) => [host, 0]))
    for (const pool of pools(client, origin).filter(live)) byAddress[pool.address!]! += 1
    expect(byAddress).toEqual(Object.fromEntries(fleet.hosts.map((host) => [host, 1])))
  })
})

const haproxy = requires(HAPROXY_BINARY, 'haproxy')
describe.skipIf(haproxy.skip)(`VIP: haproxy (TCP, round robin) in front of the backends${haproxy.note}`, () => {
  it('scale-out 3 → 6 behind one address: recycling alone rebalances, ≤ 1.2 within 1.5 × age, 0 failed', async () => {
    haproxy.check()
    const fleet = await Fleet.start(6)
    cleanups.push(() => fleet.close())
    // Three pods in rotation, three more waiting in maintenance.
    const vip = await startHaproxy({ servers: fleet.hosts.map((host, index) => ({ host, port: fleet.port, disabled: index >= 3 })) })
    cleanups.push(() => vip.close())
    const dns = tableLookup({ [NAME]: [vip.host] })
    const client = new Client({ count: COUNT, maxConnectionAge: AGE, connect: { ca: pki.ca }, lookup: dns.lookup })
    cleanups.push(() => client.destroy())
    const origin = `https://${NAME}:${vip.port}`
    const load = startLoad(client, origin, CONCURRENCY)
    cleanups.push(() => load.stop())
    await warm(client, origin, load)
    expect(new Set(pools(client, origin).map((pool) => pool.address))).toEqual(new Set([vip.host]))

    for (const host of fleet.hosts.slice(3)) await vip.enable(host)
    const since = performance.now()
    await expectBalancedWithin(load, since, fleet.hosts)
    await load.stop()
    expectNoFailures(load)
  })
})

afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

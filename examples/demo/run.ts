/**
 * The headless-service demo: one DNS name, backends that come and go, steady
 * load through drainpipe and through undici's Agent (allowH2) side by side.
 *
 * Everything runs on loopback in this process: a DNS server (UDP), HTTP/2
 * backends on 127.0.0.2, .3, … sharing one port, and the two clients, both
 * resolving the name through that DNS server.
 *
 * Timeline, in connection ages A (3 s; 1 s with --quick):
 *   0      3 backends in DNS, load starts; every backend answers in 2 ms
 *   2.5A   scale-out: 3 more backends start and join DNS
 *   7.5A   127.0.0.4 leaves DNS (a pod going away)
 *   9A     127.0.0.4 stops as a terminating pod does (GOAWAY, then close)
 *   10.5A  127.0.0.4 starts again and rejoins DNS
 *   14.5A  127.0.0.2, the backend undici's one connection is on, becomes
 *          25× slower (50 ms) for 8 s (4 s with --quick)
 *   then   it answers every request with 503 for 10 s (6 s), then recovers
 *   end    6 s later (2 s): summary and chart
 * The last two scenes are about wall-clock times (the ejection's 2 s, the
 * slow start's 5 s), not ages.
 */
import diagnostics from 'node:diagnostics_channel'
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as delay } from 'node:timers/promises'
import { Agent, request as undiciRequest } from 'undici'
import { Client, resolverLookup } from '../../lib/index.js'
import { startDnsServer } from '../../test/helpers/dns-server.js'
import { Fleet } from '../../test/helpers/fleet.js'
import { Load, type Window } from '../../test/helpers/load.js'
import { pki } from '../../test/helpers/pki.js'
import { renderChart, type Series } from './chart.js'
import { Behaviours, failingScene, percentile, SLOW_MS, ANSWER_MS, slowScene, type FailingScene, type SlowScene } from './scenes.js'
import { balance, renderFrame, renderHeader, renderLine, screen, type Frame } from './view.js'

export interface DemoOptions {
  /** A shorter run (age 1 s, about 15 s in all). */
  quick: boolean
  /** Where the chart (SVG) goes. */
  out: string
  /** Where the summary goes as JSON, if anywhere. */
  json: string | undefined
  /** Redraw a live view in place (a terminal); otherwise one line per second. */
  live: boolean
  /** drainpipe's connections per origin. */
  count: number
}

export interface ClientSummary {
  requests: number
  failed: number
  /** The first few failures, for the record. */
  failures: string[]
  /** Seconds from the change to the end of the first 1 s window with max/min ≤ bound; null: not within the phase. */
  balancedAfter: { scaleOut: number | null; return: number | null }
  /** Requests per backend over the whole run. */
  perBackend: Record<string, number>
  /** Failed requests outside the failing backend's scene. */
  failedOutsideScene: number
  /** While a backend was 25× slower. */
  slow: SlowScene
  /** While a backend failed every request. */
  failing: FailingScene
  /**
   * drainpipe only: its connections and how long each took to connect (lookup, TCP, TLS, SETTINGS),
   * in ms. Each recycle round comes that much later: `npm run simulate -- demo --compare` replays the
   * run with it.
   */
  connect?: { connections: number; mean: number; median: number; durations: number[] }
}

export interface DemoSummary {
  quick: boolean
  age: number
  count: number
  concurrency: number
  rate: number
  bound: number
  window: number
  duration: number
  events: { t: number; label: string }[]
  /** The backend that became slow, then failed (undici's). */
  victim: string
  /** drainpipe's ejections of it. */
  ejections: number
  clients: { drainpipe: ClientSummary; undici: ClientSummary }
  chart: string
}

const NAME = 'api.test'
const BOUND = 1.2
/** Balance is measured on 1 s windows of completed requests. */
const WINDOW = 1000
/** Requests in flight per client at most: a multiple of `count`, so drainpipe's connections can carry equal loads. */
const CONCURRENCY = 24
/** Requests per second per client: the same steady pace for both, well below what the machine can do. */
const RATE = 800

export async function runDemo(options: DemoOptions): Promise<{ summary: DemoSummary; ok: boolean }> {
  const age = options.quick ? 1000 : 3000
  // Changes fall mid-way between recycles (the first round of connections comes at about 1.05 A, 2.1 A, …).
  const slow = 14.5 * age
  const failing = slow + (options.quick ? 4000 : 8000)
  const recovered = failing + (options.quick ? 6000 : 10_000)
  const plan = { scaleOut: 2.5 * age, leave: 7.5 * age, stop: 9 * age, back: 10.5 * age, slow, failing, recovered, end: recovered + (options.quick ? 2000 : 6000) }
  const log = (line: string) => process.stdout.write(`${line}\n`)

  // ── Backends and DNS ─────────────────────────────────────────────────────
  const behaviours = new Behaviours()
  const fleet = await Fleet.start(3, { handler: behaviours.handler })
  const dns = await startDnsServer()
  dns.setRecords(NAME, fleet.hosts)
  const origin = `https://${NAME}:${fleet.port}`
  const url = `${origin}/hello`

  // ── The two clients, both resolving through the DNS server ───────────────
  const drainpipe = new Client({
    count: options.count,
    maxConnectionAge: age,
    connect: { ca: pki.ca },
    lookup: resolverLookup({ servers: [dns.server] }),
  })
  const agent = new Agent({ allowH2: true, connect: { ca: pki.ca, lookup: resolverLookup({ servers: [dns.server] }) } })

  const check = async (statusCode: number, headers: Record<string, string | string[] | undefined>, body: { text(): Promise<string> }) => {
    const text = await body.text()
    if (statusCode !== 200 || text !== 'hello') throw new Error(`unexpected answer ${statusCode}: ${text.slice(0, 80)}`)
    return String(headers['x-backend'])
  }
  const maxDuration = plan.end + 30_000
  const loads = {
    drainpipe: new Load(async () => {
      const response = await drainpipe.request(url)
      return check(response.statusCode, response.headers, response.body)
    }, { concurrency: CONCURRENCY, rate: RATE, maxDuration }),
    undici: new Load(async () => {
      const response = await undiciRequest(url, { dispatcher: agent })
      return check(response.statusCode, response.headers, response.body)
    }, { concurrency: CONCURRENCY, rate: RATE, maxDuration }),
  }
  const names = { drainpipe: `drainpipe (count ${options.count}, age ${age / 1000} s)`, undici: 'undici Agent (allowH2)' }

  let stopping = false
  let closed = false
  const shutdown = async () => {
    if (closed) return
    closed = true
    stopping = true
    await Promise.all([loads.drainpipe.stop(), loads.undici.stop()])
    // Graceful first; whatever is still open after 5 s is torn down.
    const patience = new AbortController()
    const overdue = delay(5000, undefined, { signal: patience.signal }).then(
      () => Promise.all([drainpipe.destroy(), agent.destroy(), fleet.close()]),
      () => {},
    )
    await Promise.race([Promise.all([drainpipe.close(), agent.close(), fleet.close(), dns.close()]), overdue])
    patience.abort()
  }
  const onSignal = () => {
    if (options.live) process.stdout.write(screen.showCursor)
    log('\ninterrupted: stopping')
    void shutdown().finally(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)

  // ── Run ──────────────────────────────────────────────────────────────────
  const connectDurations: number[] = []
  const onConnect = (message: unknown) => connectDurations.push((message as { connectDuration: number }).connectDuration)
  diagnostics.subscribe('drainpipe:pool:connect', onConnect)
  const t0 = performance.now()
  const elapsed = () => performance.now() - t0
  const events: { t: number; label: string }[] = []
  const ideal: { t: number; backends: number }[] = [{ t: 0, backends: 3 }]
  let phase = '3 backends in DNS'
  const mark = (label: string, inDns: number | undefined, phaseText: string) => {
    const t = elapsed()
    events.push({ t, label })
    if (inDns !== undefined) ideal.push({ t: t / 1000, backends: inDns })
    phase = phaseText
  }
  loads.drainpipe.start()
  loads.undici.start()

  const allHosts = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6', '127.0.0.7']
  let inDns = fleet.hosts
  if (options.live) process.stdout.write(screen.hideCursor + screen.clear)
  else log(`Each second, per client: the share (%) of the last second's requests to ${allHosts.join(', ')}; max/min of the shares of the backends in DNS (balanced: ≤ ${BOUND})`)
  let loggedPhase: string | undefined
  const draw = () => {
    const now = performance.now()
    const frame: Frame = {
      elapsed: elapsed() / 1000,
      duration: plan.end / 1000,
      phase,
      backends: allHosts,
      inDns,
      bound: BOUND,
      marks: Object.fromEntries(allHosts.flatMap((host) => {
        const behaviour = behaviours.get(host)
        return behaviour === 'ok' ? [] : [[host, behaviour === 'slow' ? '25× slower' : 'failing']]
      })),
      clients: (['drainpipe', 'undici'] as const).map((key) => ({
        name: names[key],
        window: loads[key].window(now - WINDOW, now, inDns),
        failed: loads[key].failed,
        p99: percentile(loads[key].durations(now - WINDOW, now), 99),
      })),
    }
    if (options.live) process.stdout.write(`${screen.home}${renderFrame(frame, true)}\n${screen.clearBelow}`)
    else {
      // Without the live view, its header (time and phase) once per phase.
      if (phase !== loggedPhase) log(renderHeader(frame))
      loggedPhase = phase
      log(renderLine(frame))
    }
  }
  const ticker = setInterval(draw, 1000)

  const at = async (ms: number) => {
    const left = t0 + ms - performance.now()
    if (left > 0) await delay(left)
  }
  const gone = allHosts[2]!
  // The backend undici's one connection is on: a scene on another backend would not reach undici at all.
  const victim = allHosts[0]!
  let ejections = 0
  const onEjected = (message: unknown) => {
    const { origin: ejectedFrom, address } = message as { origin: string; address: string }
    if (ejectedFrom === origin && address === victim) ejections++
  }
  diagnostics.subscribe('drainpipe:address:ejected', onEjected)
  try {
    await at(plan.scaleOut)
    await fleet.scaleTo(6)
    dns.setRecords(NAME, fleet.hosts)
    inDns = fleet.hosts
    mark('scale-out 3 → 6', 6, `scaled out to 6 backends at ${(elapsed() / 1000).toFixed(1)} s`)

    await at(plan.leave)
    inDns = fleet.hosts.filter((host) => host !== gone)
    dns.setRecords(NAME, inDns)
    mark(`${gone} out of DNS`, 5, `${gone} left DNS at ${(elapsed() / 1000).toFixed(1)} s`)

    await at(plan.stop)
    await fleet.stop(gone)
    mark(`${gone} stops`, undefined, `${gone} stopped (GOAWAY, close) at ${(elapsed() / 1000).toFixed(1)} s`)

    await at(plan.back)
    await fleet.startAt(gone)
    inDns = fleet.hosts
    dns.setRecords(NAME, inDns)
    mark(`${gone} back`, 6, `${gone} back in DNS at ${(elapsed() / 1000).toFixed(1)} s`)

    await at(plan.slow)
    behaviours.set(victim, 'slow')
    mark(`${victim} 25× slower`, undefined, `${victim} answers in ${SLOW_MS} ms instead of ${ANSWER_MS} ms since ${(elapsed() / 1000).toFixed(1)} s`)

    await at(plan.failing)
    behaviours.set(victim, 'failing')
    mark(`${victim} fails`, undefined, `${victim} answers 503 to every request since ${(elapsed() / 1000).toFixed(1)} s`)

    await at(plan.recovered)
    behaviours.set(victim, 'ok')
    mark(`${victim} recovers`, undefined, `${victim} answers again since ${(elapsed() / 1000).toFixed(1)} s`)

    await at(plan.end)
  } finally {
    diagnostics.unsubscribe('drainpipe:address:ejected', onEjected)
    clearInterval(ticker)
    if (!stopping) draw()
    if (options.live) process.stdout.write(screen.showCursor)
    process.removeListener('SIGINT', onSignal)
    await shutdown()
    diagnostics.unsubscribe('drainpipe:pool:connect', onConnect)
  }

  // ── Summary ──────────────────────────────────────────────────────────────
  const duration = plan.end
  const [scaleOut, , , back, slowed, failed, recovery] = events
  const summarise = (load: Load): ClientSummary => {
    const balancedAfter = (event: { t: number } | undefined, until: number) => {
      if (event === undefined) return null
      for (let end = event.t + WINDOW; end <= until; end += 100) {
        const window = load.window(t0 + end - WINDOW, t0 + end, allHosts)
        if (balance(window, allHosts) <= BOUND) return round((end - event.t) / 1000)
      }
      return null
    }
    const failingFrom = t0 + (failed?.t ?? duration)
    const failingTo = t0 + (recovery?.t ?? duration)
    // A 503 sent just before the recovery can reach the client a little after it.
    const sceneOver = failingTo + 1000
    return {
      requests: load.ok,
      failed: load.failed,
      failures: load.failures.slice(0, 5).map((failure) => failure.error.message),
      balancedAfter: { scaleOut: balancedAfter(scaleOut, events[1]?.t ?? duration), return: balancedAfter(back, slowed?.t ?? duration) },
      perBackend: load.window(t0, t0 + duration + 60_000, allHosts).counts,
      failedOutsideScene: load.failed - load.failedIn(failingFrom, sceneOver),
      slow: slowScene(load, victim, t0 + (slowed?.t ?? duration), failingFrom),
      failing: failingScene(load, failingFrom, failingTo),
    }
  }
  const summary: DemoSummary = {
    quick: options.quick,
    age,
    count: options.count,
    concurrency: CONCURRENCY,
    rate: RATE,
    bound: BOUND,
    window: WINDOW,
    duration: round(duration / 1000),
    events: events.map((event) => ({ t: round(event.t / 1000), label: event.label })),
    victim,
    ejections,
    clients: { drainpipe: { ...summarise(loads.drainpipe), connect: connectFigures(connectDurations) }, undici: summarise(loads.undici) },
    chart: resolve(options.out),
  }

  // ── Chart ────────────────────────────────────────────────────────────────
  const series = (load: Load): Series => {
    const t: number[] = []
    const shares: Record<string, (number | null)[]> = Object.fromEntries(allHosts.map((host) => [host, []]))
    for (let end = WINDOW; end <= duration + 1e-9; end += 250) {
      const window: Window = load.window(t0 + end - WINDOW, t0 + end, allHosts)
      t.push(end / 1000)
      for (const host of allHosts) shares[host]!.push(window.total === 0 ? null : (window.counts[host] ?? 0) / window.total)
    }
    return { t, shares }
  }
  const describe = (client: ClientSummary) => {
    const after = (value: number | null) => (value === null ? 'not balanced' : `balanced ${value.toFixed(1)} s`)
    const used = Object.entries(client.perBackend).filter(([, requests]) => requests > 0)
    const scenes = `${victim} slow: p50 ${ms(client.slow.p50)}, p99 ${ms(client.slow.p99)}; failing: ${client.failing.failed.toLocaleString('en-US')} failed`
    if (used.length === 1) return `every request went to ${used[0]![0]}, never balanced · ${scenes}`
    return `${after(client.balancedAfter.scaleOut)} after the scale-out, ${after(client.balancedAfter.return).replace('balanced ', '')} after ${gone}'s return · ${scenes}`
  }
  const notes = (client: ClientSummary) =>
    [
      { event: scaleOut, after: client.balancedAfter.scaleOut },
      { event: back, after: client.balancedAfter.return },
    ].flatMap(({ event, after }) =>
      event === undefined || after === null ? [] : [{ t: event.t / 1000 + after, label: `balanced (${after.toFixed(1)} s)` }],
    )
  const svg = renderChart({
    title: 'Share of requests per backend: drainpipe vs undici Agent (allowH2)',
    subtitle: `One DNS name, 3 → 6 backends, then ${gone} leaves and comes back; then ${victim} (undici's backend) answers 25× slower, then fails every request. Steady load: ${RATE} requests/s per client, at most ${CONCURRENCY} in flight; shares over the last 1 s.`,
    backends: allHosts,
    panels: [
      {
        title: `drainpipe — count ${options.count}, maxConnectionAge ${age / 1000} s`,
        subtitle: describe(summary.clients.drainpipe),
        series: series(loads.drainpipe),
        notes: notes(summary.clients.drainpipe),
      },
      {
        title: 'undici Agent with allowH2',
        subtitle: describe(summary.clients.undici),
        series: series(loads.undici),
        notes: notes(summary.clients.undici),
      },
    ],
    markers: events.map((event) => ({ t: event.t / 1000, label: event.label })),
    ideal,
    duration: duration / 1000,
    footer: [
      `Balanced: max/min of the per-backend shares ≤ ${BOUND} over a 1 s window that starts after the change; the time given is from the change to the end of the first such window.`,
      `Generated by npm run demo${options.quick ? ' -- --quick' : ''} (${new Date().toISOString().slice(0, 10)}, Node ${process.version}).`,
    ],
  })
  await mkdir(dirname(resolve(options.out)), { recursive: true })
  await writeFile(options.out, svg)
  if (options.json) await writeFile(options.json, `${JSON.stringify(summary, null, 2)}\n`)

  // ── Report ───────────────────────────────────────────────────────────────
  const d = summary.clients.drainpipe
  const u = summary.clients.undici
  const seconds = (value: number | null) => (value === null ? 'never (within the phase)' : `${value.toFixed(1)} s`)
  const row = (label: string, a: string, b: string) => log(`${label.padEnd(40)}${a.padEnd(30)}${b}`)
  log('')
  log(`Summary: ${summary.duration} s, drainpipe count ${options.count}, maxConnectionAge ${age / 1000} s; balanced = max/min share ≤ ${BOUND} over 1 s`)
  row('', 'drainpipe', 'undici Agent (allowH2)')
  row('time to balance after scale-out', seconds(d.balancedAfter.scaleOut), seconds(u.balancedAfter.scaleOut))
  row(`time to balance after ${gone} is back`, seconds(d.balancedAfter.return), seconds(u.balancedAfter.return))
  const slowText = (scene: SlowScene) => `${ms(scene.p50)} / ${ms(scene.p99)}`
  const failedText = (counts: { requests: number; failed: number }) =>
    `${counts.failed} of ${counts.requests} (${counts.requests === 0 ? '—' : ((100 * counts.failed) / counts.requests).toFixed(1)} %)`
  row(`${victim} 25× slower: p50 / p99`, slowText(d.slow), slowText(u.slow))
  row(`${victim} 25× slower: its share`, percentText(d.slow.share), percentText(u.slow.share))
  row(`${victim} failing: failed requests`, failedText(d.failing), failedText(u.failing))
  row('  of them from 2 s on', failedText(d.failing.after2s), failedText(u.failing.after2s))
  row(`drainpipe's ejections of ${victim}`, String(summary.ejections), '(none: undici has no outlier detection)')
  row('requests', String(d.requests), String(u.requests))
  row('failed requests in all', String(d.failed), String(u.failed))
  row('failed outside the failing scene', String(d.failedOutsideScene), String(u.failedOutsideScene))
  for (const host of allHosts) row(`requests to ${host}`, String(d.perBackend[host] ?? 0), String(u.perBackend[host] ?? 0))
  if (d.connect) row('connections (mean time to connect)', `${d.connect.connections} (${d.connect.mean} ms)`, '')
  for (const failure of d.failures) log(`drainpipe failure: ${failure}`)
  for (const failure of u.failures) log(`undici failure: ${failure}`)
  log(`chart: ${summary.chart}`)
  const ok =
    d.failedOutsideScene === 0 &&
    d.balancedAfter.scaleOut !== null &&
    d.balancedAfter.return !== null &&
    d.slow.share < 1 / allHosts.length &&
    d.failing.after2s.failed <= 0.005 * d.failing.after2s.requests
  if (!ok) {
    log(`drainpipe did not meet the goal (0 failed outside the failing scene, balanced after each change, less than the even share to the slow backend, ≤ 0.5 % failed from 2 s into the failing scene)`)
  }
  return { summary, ok }
}

const round = (value: number) => Math.round(value * 10) / 10
const ms = (value: number | null) => (value === null ? '—' : `${value.toFixed(0)} ms`)
const percentText = (value: number) => `${(100 * value).toFixed(1)} %`

function connectFigures(durations: number[]): ClientSummary['connect'] {
  if (durations.length === 0) return undefined
  const sorted = [...durations].sort((a, b) => a - b)
  return {
    connections: sorted.length,
    mean: round(sorted.reduce((a, b) => a + b, 0) / sorted.length),
    median: round(sorted[Math.floor(sorted.length / 2)]!),
    durations: durations.map(round),
  }
}

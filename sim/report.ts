/**
 * A run's report: a few lines of text, a row of a sweep's table (Markdown,
 * as the README shows it), and a chart in the demo's style.
 */
import { renderChart, type Panel } from '../examples/demo/chart.js'
import { timeline } from './analysis.js'
import type { SimulationResult } from './simulate.js'

/** 90000 → "1.5 min", 5000 → "5 s", 250 → "250 ms". */
export function duration(ms: number): string {
  if (ms < 1000) return `${round(ms, 1)} ms`
  if (ms < 120_000) return `${round(ms / 1000, 1)} s`
  if (ms < 7_200_000) return `${round(ms / 60_000, 1)} min`
  return `${round(ms / 3_600_000, 1)} h`
}

const count = (n: number) => Math.round(n).toLocaleString('en-US')
const percent = (fraction: number) => `${round(fraction * 100, 1)} %`
const ratio = (value: number) => (Number.isFinite(value) ? value.toFixed(2) : '∞')

function round(value: number, digits: number): string {
  const rounded = Number(value.toFixed(digits))
  return String(rounded)
}

/** The fleet and options in one line. */
export function describeFleet(result: SimulationResult): string {
  const o = result.options
  return (
    `${count(o.clients)} client${o.clients === 1 ? '' : 's'} × count ${o.count}, maxConnectionAge ${duration(o.age)}, jitter ${percent(o.jitter)}; ` +
    `clients started over ${o.startSpread === undefined ? 'one connection life' : duration(o.startSpread)}; ` +
    `${round(o.rate, 3)} requests/s per client (${o.arrivals}), ${duration(o.serviceTime)} each; ${handshakeText(o.handshake, o.handshakeSamples)}; ` +
    `DNS order ${o.dnsOrder}; seed ${o.seed}`
  )
}

function handshakeText(handshake: number, samples: readonly number[]): string {
  if (samples.length === 0) return `handshake ${duration(handshake)}`
  return `handshakes drawn from ${samples.length} measured connect times (mean ${duration(samples.reduce((a, b) => a + b, 0) / samples.length)})`
}

export function textReport(result: SimulationResult): string {
  const o = result.options
  const lines: string[] = []
  lines.push(`${result.scenario.name}: ${result.scenario.description}`)
  lines.push(`fleet: ${describeFleet(result)}`)
  lines.push(
    `simulated ${duration(result.scenario.duration)} in ${duration(result.cost.wallMs)} (${duration(result.cost.cpuMs)} of CPU; ` +
      `${count(result.cost.timers)} events, heap ${Math.round(result.cost.heapMB)} MB)`,
  )
  for (const change of result.changes) {
    lines.push(`after "${change.label}" (at ${duration(change.at)}):`)
    const balanced = change.balancedAfter === null ? `not within ${duration(change.until - change.at)}` : duration(change.balancedAfter)
    lines.push(`  balanced (max/min share ≤ ${o.bound} over ${duration(o.window)} windows): ${balanced}; settles at max/min ${ratio(change.settledSkew)}`)
    if (change.joined > 0) {
      const caught = change.caughtUpAfter === null ? 'not within the phase' : duration(change.caughtUpAfter)
      lines.push(`  the ${change.joined} backend${change.joined === 1 ? '' : 's'} that joined reach ${percent(o.catchUp)} of the even share: ${caught}`)
    }
  }
  const h = result.handshakes
  lines.push(
    `handshakes per backend per second after the warm-up: mean ${round(h.mean, 3)} (formula clients × count / life / backends: ${round(h.formula, 3)}, ` +
      `${signed((h.mean / h.formula - 1) * 100)} %), peak ${h.peak} in one 1 s window (at ${duration(h.peakAt)}); start-up peak ${result.startup.peak}`,
  )
  const c = result.connections
  lines.push(`connections per backend at the end: ${c.min}–${c.max} (mean ${round(c.mean, 1)})`)
  const r = result.requests
  const failures = Object.entries(r.failures).map(([code, n]) => `${code} ${count(n)}`).join(', ')
  lines.push(
    `requests: ${count(r.sent)} sent; ${count(r.waited)} waited for a handshake${r.waited > 0 ? ` (longest ${duration(r.longestWait)})` : ''}, ` +
      `besides ${count(r.coldStarts)} at the clients' start; ${count(r.failed)} failed${failures ? ` (${failures})` : ''}`,
  )
  const l = result.lifecycle
  lines.push(
    `recycles ${count(l.recyclesOk)} ok, ${count(l.recyclesFailed)} failed; ${count(l.goaways)} GOAWAYs; ${count(l.retries)} retries; ` +
      `${count(l.lookups)} lookups (${count(l.lookupFailures)} failed)`,
  )
  return lines.join('\n')
}

const signed = (value: number) => `${value >= 0 ? '+' : ''}${value.toFixed(1)}`

export interface Column {
  title: string
  value: (result: SimulationResult) => string
}

/** The columns a sweep varies over, then the figures. */
export function tableColumns(varied: string[]): Column[] {
  const option: Record<string, Column> = {
    clients: { title: 'clients', value: (r) => count(r.options.clients) },
    backends: { title: 'backends', value: (r) => String(r.options.backends) },
    count: { title: 'count', value: (r) => String(r.options.count) },
    age: { title: 'maxConnectionAge', value: (r) => duration(r.options.age) },
    jitter: { title: 'jitter', value: (r) => percent(r.options.jitter) },
    rate: { title: 'req/s per client', value: (r) => round(r.options.rate, 3) },
    'service-time': { title: 'in flight per client', value: (r) => round((r.options.rate * r.options.serviceTime) / 1000, 2) },
    seed: { title: 'seed', value: (r) => String(r.options.seed) },
  }
  const first = (r: SimulationResult) => r.changes[0]
  return [
    ...varied.map((name) => option[name]!),
    {
      title: 'balanced (≤ 1.2)',
      value: (r) => {
        const change = first(r)
        return change === undefined ? '–' : change.balancedAfter === null ? 'never' : duration(change.balancedAfter)
      },
    },
    {
      title: 'new backends at 90 %',
      value: (r) => {
        const change = first(r)
        return change === undefined || change.joined === 0 ? '–' : change.caughtUpAfter === null ? 'not yet' : duration(change.caughtUpAfter)
      },
    },
    { title: 'settled max/min', value: (r) => (first(r) === undefined ? '–' : ratio(first(r)!.settledSkew)) },
    { title: 'handshakes/backend/s: mean', value: (r) => round(r.handshakes.mean, 3) },
    { title: 'formula', value: (r) => round(r.handshakes.formula, 3) },
    { title: 'peak (1 s)', value: (r) => String(r.handshakes.peak) },
    { title: 'start-up peak', value: (r) => String(r.startup.peak) },
    { title: 'connections/backend at the end', value: (r) => `${r.connections.min}–${r.connections.max}` },
    { title: 'waited', value: (r) => count(r.requests.waited) },
    { title: 'failed', value: (r) => count(r.requests.failed) },
    { title: 'simulated', value: (r) => duration(r.scenario.duration) },
    { title: 'wall (CPU)', value: (r) => `${duration(r.cost.wallMs)} (${duration(r.cost.cpuMs)})` },
  ]
}

export function markdownTable(columns: Column[], results: SimulationResult[]): string {
  const rows = [columns.map((column) => column.title), columns.map(() => '---'), ...results.map((r) => columns.map((column) => column.value(r)))]
  return rows.map((row) => `| ${row.join(' | ')} |`).join('\n')
}

/** Few backends: one line each, as in the demo; many: the highest and lowest share. */
const PER_BACKEND_UP_TO = 8

export function chart(result: SimulationResult, command: string): string {
  const o = result.options
  const seconds = result.scenario.duration / 1000
  const series = timeline(result.metrics, o.window, 400)
  const addresses = result.metrics.backends.map((backend) => backend.address)
  const perBackend = addresses.length <= PER_BACKEND_UP_TO
  const evenShare = result.metrics.dns.map((entry) => ({ t: entry.t / 1000, value: entry.addresses.length === 0 ? 0 : 1 / entry.addresses.length }))
  const maxOf = (values: (number | null)[]) => Math.max(1e-9, ...values.map((value) => value ?? 0))
  const shareMax = perBackend ? 1 : niceCeiling(maxOf(series.highestShare))
  const panels: Panel[] = [
    {
      title: perBackend ? 'Share of requests per backend' : 'Share of requests: the backend with the most and the one with the fewest (of those in DNS)',
      subtitle: `over the last ${duration(o.window)}; ${describeChanges(result)}`,
      series: {
        t: series.t,
        shares: perBackend ? series.shares : { 'highest share': series.highestShare, 'lowest share': series.lowestShare },
      },
      axis: { max: shareMax, format: (value) => `${round(value * 100, 1)}%` },
      reference: evenShare,
      notes: result.changes.flatMap((change) =>
        change.balancedAfter === null ? [] : [{ t: (change.at + change.balancedAfter) / 1000, label: `balanced (${duration(change.balancedAfter)})` }],
      ),
    },
    {
      title: perBackend ? 'TLS handshakes per backend per second' : 'TLS handshakes per backend per second: the busiest backend and the mean',
      subtitle: `over the last ${duration(Math.max(1000, series.stepMs))}; dotted: clients × count / connection life / backends in DNS`,
      series: { t: series.t, shares: perBackend ? series.handshakes : { 'busiest backend': series.busiestHandshakes, mean: series.meanHandshakes } },
      axis: { max: niceCeiling(Math.max(...series.busiestHandshakes, result.handshakes.formula)), format: (value) => round(value, 2) },
      // The formula per backend, for the backends in DNS at each moment.
      reference: result.metrics.dns.map((entry) => ({
        t: entry.t / 1000,
        value: (result.handshakes.formula * result.handshakes.backends) / Math.max(1, entry.addresses.length),
      })),
    },
    {
      title: perBackend ? 'Open connections per backend' : 'Open connections per backend: the most and the fewest (of those in DNS)',
      subtitle: `${result.options.clients * result.options.count} connections in all when every client has its ${result.options.count}`,
      series: { t: series.t, shares: perBackend ? series.connections : { 'most connections': series.mostConnections, 'fewest connections': series.fewestConnections } },
      axis: { max: niceCeiling(Math.max(1, ...series.mostConnections)), format: (value) => round(value, 1) },
      reference: null,
    },
  ]
  return renderChart({
    title: `drainpipe fleet simulation: ${result.scenario.name}`,
    subtitle: `${result.scenario.description}. ${describeFleet(result)}`,
    backends: perBackend ? addresses : [
      'highest share',
      'lowest share',
      'busiest backend',
      'mean',
      'most connections',
      'fewest connections',
    ],
    panels,
    markers: result.events.map((event) => ({ t: event.t / 1000, label: event.label })),
    ideal: [],
    duration: seconds,
    footer: [
      `Simulated: real drainpipe clients (origins, shards, pools, recycling, backoff) on a virtual clock, with a simulated network and DNS. Balanced: max/min share ≤ ${o.bound}.`,
      `Generated by ${command} (${new Date().toISOString().slice(0, 10)}, Node ${process.version}).`,
    ],
    legend: { title: 'line', reference: ['reference', '(even share; formula)'] },
  })
}

function describeChanges(result: SimulationResult): string {
  return result.events.length === 0 ? 'nothing changes' : result.events.map((event) => `${event.label} at ${duration(event.t)}`).slice(0, 3).join(', ')
}

/** A round upper bound for an axis (1, 2, 4 or 5 times a power of ten): its quarters read well. */
function niceCeiling(value: number): number {
  const power = 10 ** Math.floor(Math.log10(value))
  for (const step of [1, 2, 4, 5, 10]) if (step * power >= value) return step * power
  return 10 * power
}

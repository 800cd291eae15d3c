/**
 * The figures of a run, from its buckets: per-backend share over sliding
 * windows (max/min skew), time until balanced after each change, how fast
 * the backends that joined get their share, handshakes per backend per
 * second (mean and peak of 1 s windows) and connections per backend.
 */
import type { BackendSeries, Metrics } from './metrics.js'
import type { Change } from './scenarios.js'

/** Running totals of each backend's completions, made once per series when the run is over: a window's sum is then one subtraction. */
const prefixes = new WeakMap<BackendSeries, Float64Array>()

function prefix(series: BackendSeries): Float64Array {
  let sums = prefixes.get(series)
  if (sums === undefined) {
    sums = new Float64Array(series.completions.length + 1)
    for (let i = 0; i < series.completions.length; i++) sums[i + 1] = sums[i]! + series.completions[i]!
    prefixes.set(series, sums)
  }
  return sums
}

/** Requests per backend in [from, to) (virtual ms, rounded to buckets), for the given backends. */
function counts(metrics: Metrics, backends: readonly BackendSeries[], from: number, to: number): number[] {
  const first = Math.max(0, Math.round(from / metrics.bucket))
  const last = Math.max(first, Math.min(metrics.length, Math.round(to / metrics.bucket)))
  return backends.map((series) => {
    const sums = prefix(series)
    return sums[last]! - sums[first]!
  })
}

function seriesOf(metrics: Metrics, addresses: readonly string[]): BackendSeries[] {
  return addresses.map((address) => metrics.backend(address))
}

/** max/min of the requests per backend in DNS over the window that ends at `end`: 1 is even, Infinity when one got none. */
export function skewAt(metrics: Metrics, end: number, window: number): number {
  const values = counts(metrics, seriesOf(metrics, metrics.inDns(end - 1)), end - window, end)
  if (values.length === 0) return Number.NaN
  const min = Math.min(...values)
  return min === 0 ? Number.POSITIVE_INFINITY : Math.max(...values) / min
}

export interface ChangeFigures {
  label: string
  at: number
  /** The end of the phase the change starts. */
  until: number
  /** How many backends joined DNS at the change. */
  joined: number
  /** From the change to the end of the first window after it with skew ≤ bound (ms); null: not before `until`. */
  balancedAfter: number | null
  /** From the change until the backends that joined get `catchUp` of the even share, on average over a window (ms). */
  caughtUpAfter: number | null
  /** The median skew over the phase's last connection life: what it settles at. */
  settledSkew: number
}

export interface Measure {
  /** Share window (ms). */
  window: number
  /** Balanced: max/min ≤ this. */
  bound: number
  /** Joined backends caught up at this fraction of the even share. */
  catchUp: number
  /** The longest a connection lives (age + jitter, ms): how far back "settled" looks. */
  cycle: number
}

export function changeFigures(metrics: Metrics, change: Change, measure: Measure): ChangeFigures {
  const { window, bound, catchUp, cycle } = measure
  const step = metrics.bucket
  // Window ends on bucket edges, the first one a whole window after the change (none of it before).
  const firstEnd = Math.ceil((change.at + window) / step) * step
  let balancedAfter: number | null = null
  let caughtUpAfter: number | null = null
  const joined = seriesOf(metrics, change.joined)
  for (let end = firstEnd; end <= change.until + 1e-9; end += step) {
    if (balancedAfter === null && skewAt(metrics, end, window) <= bound) balancedAfter = end - change.at
    if (caughtUpAfter === null && joined.length > 0) {
      const inDns = metrics.inDns(end - 1)
      const all = counts(metrics, seriesOf(metrics, inDns), end - window, end).reduce((a, b) => a + b, 0)
      const mine = counts(metrics, joined, end - window, end).reduce((a, b) => a + b, 0)
      if (all > 0 && mine / joined.length >= (catchUp * all) / inDns.length) caughtUpAfter = end - change.at
    }
    if (balancedAfter !== null && (caughtUpAfter !== null || joined.length === 0)) break
  }
  const skews: number[] = []
  for (let end = Math.max(firstEnd, change.until - cycle); end <= change.until + 1e-9; end += step) skews.push(skewAt(metrics, end, window))
  return { label: change.label, at: change.at, until: change.until, joined: change.joined.length, balancedAfter, caughtUpAfter, settledSkew: median(skews) }
}

export interface HandshakeFigures {
  /** Handshakes per backend per second, averaged over the span and the backends in DNS. */
  mean: number
  /** The most handshakes one backend took in one 1 s window of the span. */
  peak: number
  /** When that was (virtual ms, the window's start). */
  peakAt: number
  /** Backends in DNS, on average over the span. */
  backends: number
}

/** Handshakes per backend per second in [from, to), on 1 s windows aligned to whole seconds. */
export function handshakeFigures(metrics: Metrics, from: number, to: number): HandshakeFigures {
  const perSecond = Math.max(1, Math.round(1000 / metrics.bucket))
  const first = Math.ceil(from / 1000)
  const last = Math.floor(to / 1000)
  let total = 0
  let backendSeconds = 0
  let peak = 0
  let peakAt = first * 1000
  for (let second = first; second < last; second++) {
    backendSeconds += metrics.inDns(second * 1000).length
    for (const series of metrics.backends) {
      let sum = 0
      for (let i = second * perSecond; i < (second + 1) * perSecond; i++) sum += series.handshakes[i] ?? 0
      total += sum
      if (sum > peak) {
        peak = sum
        peakAt = second * 1000
      }
    }
  }
  const seconds = Math.max(1, last - first)
  return { mean: backendSeconds === 0 ? 0 : total / backendSeconds, peak, peakAt, backends: backendSeconds / seconds }
}

export interface ConnectionFigures {
  /** Open connections of the backend that had the fewest / the most, at the end. */
  min: number
  max: number
  mean: number
}

/** Open connections per backend in DNS in the last bucket. */
export function connectionFigures(metrics: Metrics): ConnectionFigures {
  const last = metrics.length - 1
  const values = seriesOf(metrics, metrics.inDns(last * metrics.bucket)).map((series) => series.connections[last]!)
  if (values.length === 0) return { min: 0, max: 0, mean: 0 }
  return { min: Math.min(...values), max: Math.max(...values), mean: values.reduce((a, b) => a + b, 0) / values.length }
}

/** Time series for the chart: shares (highest, lowest of the backends in DNS), handshakes and connections per backend. */
export interface Timeline {
  t: number[]
  /** Between two points (ms). */
  stepMs: number
  highestShare: (number | null)[]
  lowestShare: (number | null)[]
  busiestHandshakes: number[]
  meanHandshakes: number[]
  mostConnections: number[]
  fewestConnections: number[]
  /** Per backend (for small fleets, drawn one line each): its share over the window ending at each `t`, */
  shares: Record<string, (number | null)[]>
  /** its handshakes per second, */
  handshakes: Record<string, number[]>
  /** and its open connections. */
  connections: Record<string, number[]>
}

export function timeline(metrics: Metrics, window: number, points: number): Timeline {
  const duration = metrics.length * metrics.bucket
  const step = Math.max(metrics.bucket, Math.ceil(duration / points / metrics.bucket) * metrics.bucket)
  const out: Timeline = {
    t: [],
    stepMs: step,
    highestShare: [],
    lowestShare: [],
    busiestHandshakes: [],
    meanHandshakes: [],
    mostConnections: [],
    fewestConnections: [],
    shares: Object.fromEntries(metrics.backends.map((series) => [series.address, []])),
    handshakes: Object.fromEntries(metrics.backends.map((series) => [series.address, []])),
    connections: Object.fromEntries(metrics.backends.map((series) => [series.address, []])),
  }
  // Handshake rates over at least a second: over a shorter step one handshake reads as a burst.
  const rateSpan = Math.max(step, 1000)
  for (let end = Math.max(window, step); end <= duration + 1e-9; end += step) {
    const inDns = metrics.inDns(end - 1)
    const dnsSeries = seriesOf(metrics, inDns)
    const all = counts(metrics, metrics.backends, end - window, end)
    const total = all.reduce((a, b) => a + b, 0)
    metrics.backends.forEach((series, i) => out.shares[series.address]!.push(total === 0 ? null : all[i]! / total))
    const mine = counts(metrics, dnsSeries, end - window, end)
    out.t.push(end / 1000)
    out.highestShare.push(total === 0 || mine.length === 0 ? null : Math.max(...mine) / total)
    out.lowestShare.push(total === 0 || mine.length === 0 ? null : Math.min(...mine) / total)
    const from = Math.max(0, Math.round((end - rateSpan) / metrics.bucket))
    const to = Math.round(end / metrics.bucket)
    const seconds = ((to - from) * metrics.bucket) / 1000
    let busiest = 0
    let sum = 0
    for (const series of metrics.backends) {
      let n = 0
      for (let i = from; i < to; i++) n += series.handshakes[i]!
      sum += n
      if (n > busiest) busiest = n
      out.handshakes[series.address]!.push(n / seconds)
      out.connections[series.address]!.push(series.connections[to - 1]!)
    }
    out.busiestHandshakes.push(busiest / seconds)
    out.meanHandshakes.push(inDns.length === 0 ? 0 : sum / inDns.length / seconds)
    const connections = dnsSeries.map((series) => series.connections[to - 1]!)
    out.mostConnections.push(connections.length === 0 ? 0 : Math.max(...connections))
    out.fewestConnections.push(connections.length === 0 ? 0 : Math.min(...connections))
  }
  return out
}

function median(values: number[]): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

/**
 * Example: Prometheus metrics for drainpipe with prom-client.
 *
 * drainpipe does not depend on any metrics library. It publishes its
 * lifecycle on `node:diagnostics_channel` channels named `drainpipe:*`
 * (pool connect, recycle, drain, close, GOAWAY, PING timeout, retry), and
 * `instrumentPrometheus()` below turns them into counters and histograms in
 * a prom-client registry. Copy it into your app, or import it from here.
 *
 * Run: npx tsx examples/prometheus.ts
 *
 * `main` starts two local HTTP/2 servers on 127.0.0.2 and 127.0.0.3 (the pods
 * behind a headless service called api.test), sends a short load through a
 * client with `maxConnectionAge: 200` so connections recycle several times,
 * has the servers send one GOAWAY, and prints the metrics text that a
 * /metrics endpoint would serve.
 */
import diagnostics from 'node:diagnostics_channel'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { Client, type ChannelMessages, type ChannelName } from '../lib/index.js' // in your app: from 'drainpipe-http2'

/** HTTP/2 error code names (RFC 9113, section 7), for the GOAWAY label. */
const H2_ERROR_NAMES = [
  'NO_ERROR',
  'PROTOCOL_ERROR',
  'INTERNAL_ERROR',
  'FLOW_CONTROL_ERROR',
  'SETTINGS_TIMEOUT',
  'STREAM_CLOSED',
  'FRAME_SIZE_ERROR',
  'REFUSED_STREAM',
  'CANCEL',
  'COMPRESSION_ERROR',
  'CONNECT_ERROR',
  'ENHANCE_YOUR_CALM',
  'INADEQUATE_SECURITY',
  'HTTP_1_1_REQUIRED',
]
const h2ErrorName = (code: number): string => H2_ERROR_NAMES[code] ?? `0x${code.toString(16)}`

export interface PrometheusOptions {
  /** Prefix of every metric name. Default `drainpipe_`. */
  prefix?: string
  /** Bucket boundaries of the histograms. */
  buckets?: {
    /** `…pool_connect_seconds`: DNS + TCP + TLS + SETTINGS. */
    connectSeconds?: number[]
    /** `…pool_age_seconds`: how long a connection lived, observed when it closes. */
    ageSeconds?: number[]
    /** `…pool_requests`: requests a connection served, observed when it closes. */
    requests?: number[]
  }
}

type Listeners = { [N in ChannelName]?: (message: ChannelMessages[N]) => void }

/** Subscribes to drainpipe's channels; returns the unsubscribe. */
function subscribe(listeners: Listeners): () => void {
  const entries = Object.entries(listeners) as [ChannelName, (message: unknown) => void][]
  for (const [name, listener] of entries) diagnostics.subscribe(name, listener)
  return () => {
    for (const [name, listener] of entries) diagnostics.unsubscribe(name, listener)
  }
}

/**
 * Registers drainpipe's metrics in `registry` and keeps them up to date from
 * the `drainpipe:*` diagnostics channels, for every `Client` in the process.
 * Returns a function that stops updating them (the metrics stay registered).
 *
 * - `drainpipe_pool_connects_total{origin}`, `drainpipe_pool_connect_failures_total{origin}`
 * - `drainpipe_pool_connect_seconds{origin}` (histogram)
 * - `drainpipe_pools_open{origin}`: connections up and not yet closed (draining ones included)
 * - `drainpipe_recycles_total{origin,result}`: `ok` (successor took over) or `failed` (old one keeps serving)
 * - `drainpipe_drains_total{origin,reason}`: `successor-ready`, `goaway`, `origin-idle`, `idle-timeout`, `close-requested`
 * - `drainpipe_goaways_total{origin,code}`, `drainpipe_ping_timeouts_total{origin}`, `drainpipe_ping_backoffs_total{origin}`
 * - `drainpipe_retries_total{origin,reason}`: transparent retries of requests the server did not process
 * - `drainpipe_ejections_total{origin}`: addresses ejected by outlier detection (failures in a row)
 * - `drainpipe_pool_age_seconds{origin,reason}` (histogram, at close; `reason` is why it closed)
 * - `drainpipe_pool_requests{origin}` (histogram, at close: requests served per connection)
 */
export function instrumentPrometheus(registry: Registry, options: PrometheusOptions = {}): () => void {
  const prefix = options.prefix ?? 'drainpipe_'
  const registers = [registry]
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    new Counter({ name: `${prefix}${name}`, help, labelNames, registers })
  const histogram = <L extends string>(name: string, help: string, labelNames: readonly L[], buckets: number[]) =>
    new Histogram({ name: `${prefix}${name}`, help, labelNames, buckets, registers })
  const connects = counter('pool_connects_total', 'HTTP/2 connections established.', ['origin'])
  const connectFailures = counter('pool_connect_failures_total', 'Connection attempts that failed (DNS, TCP, TLS, ALPN or timeout).', ['origin'])
  const connectSeconds = histogram(
    'pool_connect_seconds',
    'Time to establish a connection: DNS lookup, TCP, TLS and the server SETTINGS.',
    ['origin'],
    options.buckets?.connectSeconds ?? [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  )
  const recycles = counter('recycles_total', 'Planned replacements of connections that reached their maximum age, by result.', ['origin', 'result'])
  const drains = counter('drains_total', 'Connections that became read-only and drained their in-flight streams, by reason.', ['origin', 'reason'])
  const goaways = counter('goaways_total', 'GOAWAY frames received from servers, by HTTP/2 error code.', ['origin', 'code'])
  const pingTimeouts = counter('ping_timeouts_total', 'Connections declared dead because a PING was not acknowledged in time.', ['origin'])
  const pingBackoffs = counter('ping_backoffs_total', 'Times a server asked for fewer PINGs (too_many_pings) and the interval doubled.', ['origin'])
  const retries = counter('retries_total', 'Requests sent again because the server provably did not process them, by reason.', ['origin', 'reason'])
  const ejections = counter('ejections_total', 'Addresses ejected by outlier detection after failures in a row.', ['origin'])
  const ageSeconds = histogram(
    'pool_age_seconds',
    'How long connections lived, observed when they close, by close reason.',
    ['origin', 'reason'],
    options.buckets?.ageSeconds ?? [0.1, 0.25, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600],
  )
  const requests = histogram(
    'pool_requests',
    'Requests (streams) a connection served in its life, observed when it closes.',
    ['origin'],
    options.buckets?.requests ?? [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000],
  )

  // Connections that are up: the gauge reads this, and closes of connections
  // that never came up (a failed connect) stay out of the age histograms.
  const open = new Map<number, string>()
  const origins = new Set<string>()
  new Gauge({
    name: `${prefix}pools_open`,
    help: 'Connections established and not yet closed (draining ones included).',
    labelNames: ['origin'] as const,
    registers,
    collect() {
      const counts = new Map([...origins].map((origin) => [origin, 0]))
      for (const origin of open.values()) counts.set(origin, (counts.get(origin) ?? 0) + 1)
      for (const [origin, count] of counts) this.set({ origin }, count)
    },
  })
  const seen = (origin: string) => {
    if (origins.has(origin)) return
    origins.add(origin)
    // Present from the start, so rate() and alerts see a 0 rather than no series.
    for (const result of ['ok', 'failed']) recycles.inc({ origin, result }, 0)
  }

  return subscribe({
    'drainpipe:pool:connect'({ origin, id, connectDuration }) {
      seen(origin)
      open.set(id, origin)
      connects.inc({ origin })
      connectSeconds.observe({ origin }, connectDuration / 1000)
    },
    'drainpipe:pool:connect-failed'({ origin }) {
      seen(origin)
      connectFailures.inc({ origin })
    },
    'drainpipe:pool:recycle'({ origin, result }) {
      recycles.inc({ origin, result })
    },
    'drainpipe:pool:drain'({ origin, reason }) {
      drains.inc({ origin, reason })
    },
    'drainpipe:pool:close'({ origin, id, reason, age, served }) {
      if (!open.delete(id)) return
      ageSeconds.observe({ origin, reason }, age / 1000)
      requests.observe({ origin }, served)
    },
    'drainpipe:pool:goaway'({ origin, errorCode }) {
      goaways.inc({ origin, code: h2ErrorName(errorCode) })
    },
    'drainpipe:pool:ping-timeout'({ origin }) {
      pingTimeouts.inc({ origin })
    },
    'drainpipe:pool:ping-backoff'({ origin }) {
      pingBackoffs.inc({ origin })
    },
    'drainpipe:request:retry'({ origin, reason }) {
      retries.inc({ origin, reason })
    },
    'drainpipe:address:ejected'({ origin }) {
      ejections.inc({ origin })
    },
  })
}

// ── The demo ──────────────────────────────────────────────────────────────

async function main(): Promise<void> {
  // Test helpers of this repository: local TLS HTTP/2 servers and a DNS table.
  const { startBackends, tableLookup } = await import('../test/helpers/h2-server.js')
  const { pki } = await import('../test/helpers/pki.js')

  const registry = new Registry()
  // Connections here live ~200 ms, so the age buckets are finer than the defaults (made for minutes).
  const stop = instrumentPrometheus(registry, { buckets: { ageSeconds: [0.1, 0.2, 0.25, 0.5, 1, 60] } })
  // In an app: serve `await registry.metrics()` with content type `registry.contentType` on /metrics.

  // Two pods behind a headless service: api.test resolves to both.
  const backends = await startBackends(2, { firstHost: 2 })
  const dns = tableLookup({ 'api.test': backends.map((backend) => backend.host) })
  const client = new Client({
    maxConnectionAge: 200,
    lookup: dns.lookup, // stands in for DNS; leave it out to use dns.lookup
    connect: { ca: pki.ca }, // only for the local servers' test certificates
  })
  const api = `https://api.test:${backends[0]!.port}`

  let sent = 0
  let goawaySent = false
  const started = performance.now()
  const worker = async () => {
    // Until a few recycles happened (bounded, should the machine be very slow).
    while (client.stats().recycles.ok < 4 && performance.now() - started < 5_000) {
      const res = await client.request(`${api}/hello`)
      await res.body.text()
      sent++
      if (sent === 20 && !goawaySent) {
        goawaySent = true
        // The servers close their connections gracefully (GOAWAY, then close once
        // their streams are done), as on shutdown: drainpipe drains and replaces them.
        for (const backend of backends) for (const session of backend.sessions) session.close()
      }
    }
  }
  await Promise.all(Array.from({ length: 4 }, worker))
  await client.close() // every connection closes, so the age and requests histograms see them all

  const stats = client.stats()
  console.log(
    `${sent} requests in ${(performance.now() - started).toFixed(0)} ms; client.stats(): recycles ok=${stats.recycles.ok} failed=${stats.recycles.failed}, goaways=${stats.goaways}, pingTimeouts=${stats.pingTimeouts}, retries=${stats.retries}`,
  )
  console.log(`served by: ${backends.map((backend) => `${backend.host} ${backend.requests} requests on ${backend.connections} connections`).join(', ')}`)
  console.log()
  console.log(await registry.metrics())

  stop()
  await Promise.all(backends.map((backend) => backend.close()))
}

// Run the demo only when executed directly, not when imported (tests import instrumentPrometheus).
if (process.argv[1] !== undefined && import.meta.url === (await import('node:url')).pathToFileURL(process.argv[1]).href) {
  await main()
}

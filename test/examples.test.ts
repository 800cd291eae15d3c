/**
 * Keeps the examples from rotting: every examples/*.ts runs as a child
 * process (as a user would run it) and must exit 0 with its key output; the
 * Prometheus and OpenTelemetry instrumentations are checked number by number
 * against client.stats() and the servers' own counts, with lifecycle timers
 * on a manual clock so every recycle is exact.
 */
import { spawn } from 'node:child_process'
import { readdirSync } from 'node:fs'
import http2 from 'node:http2'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { Registry } from 'prom-client'
import { MeterProvider, MetricReader, DataPointType, type ResourceMetrics, type Histogram } from '@opentelemetry/sdk-metrics'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { SpanStatusCode } from '@opentelemetry/api'
import { Client, type ClientStats } from '../lib/index.js'
import { instrumentPrometheus } from '../examples/prometheus.js'
import { instrumentOpenTelemetry } from '../examples/opentelemetry.js'
import { record } from './helpers/channels.js'
import { startBackend, tableLookup, type Backend } from './helpers/h2-server.js'
import { ManualClock } from './helpers/manual-clock.js'
import { pki } from './helpers/pki.js'

const root = fileURLToPath(new URL('..', import.meta.url))

const cleanup: (() => Promise<unknown> | unknown)[] = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

// ── Every example runs as written ────────────────────────────────────────

/** examples/*.ts, except demo* and *.test.ts (owned and tested elsewhere); examples/grpc/ is a folder, so not listed. */
const examples = readdirSync(new URL('../examples/', import.meta.url), { withFileTypes: true })
  .filter((entry) => entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') && !entry.name.startsWith('demo'))
  .map((entry) => entry.name)
  .sort()

interface Run {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  ms: number
}

/** `node --import tsx examples/<file>`, killed after `timeout` ms. */
function runExample(file: string, timeout = 25_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const started = performance.now()
    const child = spawn(process.execPath, ['--import', 'tsx', `examples/${file}`], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, ms: performance.now() - started })
    })
  })
}

const number = (text: string, pattern: RegExp): number => {
  const match = pattern.exec(text)
  if (!match) throw new Error(`no match for ${pattern} in:\n${text}`)
  return Number(match[1])
}

/** The sum of every line matching `pattern` (global, multiline), 0 when none does. */
const total = (text: string, pattern: RegExp): number => [...text.matchAll(pattern)].reduce((sum, match) => sum + Number(match[1]), 0)

/** What each example must print, beyond exiting 0 (examples added later only need to exit 0). */
const expectations: Record<string, (stdout: string) => void> = {
  'fetch-replacement.ts'(out) {
    for (const name of ['ada', 'grace', 'edsger']) expect(out).toContain(`getGreeting: hello, ${name} (server saw HTTP/2.0)`)
    expect(out).toContain('placeOrder: {"item":"drainpipe","quantity":2}')
    expect(out).toMatch(/through drainpipe: 4 requests on 1 h2 connection\(s\) to https:\/\/127\.0\.0\.1:\d+/)
    expect(out).toMatch(/requests by address: \{"127\.0\.0\.1":4\}/)
    expect(out).toContain('the server accepted 1 connection(s) for 4 requests')
  },
  'prometheus.ts'(out) {
    const recycles = number(out, /client\.stats\(\): recycles ok=(\d+)/)
    expect(recycles).toBeGreaterThanOrEqual(1)
    expect(number(out, /^drainpipe_recycles_total\{[^}]*result="ok"\} (\d+)$/m)).toBe(recycles)
    expect(number(out, /^drainpipe_recycles_total\{[^}]*result="failed"\} (\d+)$/m)).toBe(0)
    const goaways = number(out, /goaways=(\d+)/)
    expect(goaways).toBeGreaterThanOrEqual(1)
    expect(total(out, /^drainpipe_goaways_total\{[^}]*code="NO_ERROR"\} (\d+)$/gm)).toBe(goaways)
    expect(total(out, /^drainpipe_retries_total\{[^}]*\} (\d+)$/gm)).toBe(number(out, /retries=(\d+)/))
    const connects = number(out, /^drainpipe_pool_connects_total\{[^}]*\} (\d+)$/m)
    expect(connects).toBeGreaterThanOrEqual(recycles + 2) // first one, successors, the GOAWAY's replacement
    // Everything closed before printing: one age observation per connection, none open.
    expect(total(out, /^drainpipe_pool_age_seconds_count\{[^}]*\} (\d+)$/gm)).toBe(connects)
    expect(number(out, /^drainpipe_pools_open\{[^}]*\} (\d+)$/m)).toBe(0)
    expect(out).toContain('# TYPE drainpipe_pool_connect_seconds histogram')
    expect(out).toContain('# TYPE drainpipe_pool_requests histogram')
  },
  'opentelemetry.ts'(out) {
    const recycles = number(out, /client\.stats\(\): recycles ok=(\d+)/)
    expect(recycles).toBeGreaterThanOrEqual(1)
    expect(number(out, /drainpipe\.recycles\{drainpipe\.recycle\.result=ok\}: (\d+)/)).toBe(recycles)
    const goaways = number(out, /goaways=(\d+)/)
    expect(goaways).toBeGreaterThanOrEqual(1)
    expect(total(out, /drainpipe\.goaways\{drainpipe\.goaway\.error_code=NO_ERROR\}: (\d+)/g)).toBe(goaways)
    expect(total(out, /drainpipe\.retries\{[^}]*\}: (\d+)/g)).toBe(number(out, /retries=(\d+)/))
    const connects = number(out, /drainpipe\.pool\.connects: (\d+)/)
    expect(number(out, /spans \((\d+)\):/)).toBe(connects)
    expect(out.match(/^ {2}drainpipe\.connection #\d+ api\.test -> 127\.0\.0\.[23] /gm)?.length).toBe(connects)
    expect(out.match(/successor of #\d+$/gm)?.length).toBe(recycles)
    expect(out).toContain('goaway(error_code=NO_ERROR')
    expect(out).toContain('drain(reason=successor-ready')
    expect(number(out, /drainpipe\.pool\.open: (\d+)/)).toBe(0)
    expect(number(out, /drainpipe\.pool\.requests: count=(\d+)/)).toBe(connects)
  },
}

describe('examples', () => {
  it('lists the examples this suite knows', () => {
    expect(examples).toEqual(expect.arrayContaining(Object.keys(expectations)))
  })

  it.each(examples)('examples/%s runs by itself, exits 0 and prints what it shows', async (file) => {
    const run = await runExample(file)
    const report = `exit ${run.code} ${run.signal ?? ''} after ${run.ms.toFixed(0)} ms\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`
    expect(run.signal, report).toBeNull()
    expect(run.code, report).toBe(0)
    expect(run.stderr, report).toBe('')
    expectations[file]?.(run.stdout)
  })
})

// ── The numbers the instrumentations report ──────────────────────────────

const AGE = 1_000
const RECYCLES = 3
const FLAKY = 5

interface Scenario {
  client: Client
  backend: Backend
  stats: ClientStats
}

/**
 * One origin, lifecycle on a manual clock: RECYCLES exact recycles (each
 * connection closes at exactly AGE), FLAKY requests the server refuses once
 * (one transparent retry each), then the server closes its connection
 * gracefully (one GOAWAY; the next request makes the replacement), then the
 * client closes.
 */
async function scripted(): Promise<Scenario> {
  const clock = new ManualClock()
  const refused = new Set<string>()
  const backend = await startBackend({
    host: '127.0.0.2',
    handler(req, res) {
      const url = new URL(req.url, 'https://x')
      if (url.pathname !== '/flaky') return false
      const id = url.searchParams.get('id') ?? ''
      if (refused.has(id)) {
        res.end(id)
      } else {
        refused.add(id)
        res.stream.close(http2.constants.NGHTTP2_REFUSED_STREAM)
      }
    },
  })
  const dns = tableLookup({ 'api.test': [backend.host] })
  const client = new Client({
    connect: { ca: pki.ca },
    lookup: dns.lookup,
    clock,
    maxConnectionAge: AGE,
    maxConnectionAgeJitter: 0,
    keepAlive: false,
  })
  cleanup.push(async () => {
    await client.destroy()
    await backend.close()
  })
  const base = `https://api.test:${backend.port}`
  const events = record('drainpipe:pool:connect', 'drainpipe:pool:recycle', 'drainpipe:pool:close', 'drainpipe:pool:goaway')
  cleanup.push(() => events.stop())
  const get = async (path: string) => (await client.request(`${base}${path}`)).body.text()
  const openPool = () => client.stats().origins[base]!.pools.find((pool) => pool.state === 'open')!

  expect(await get('/hello')).toBe('hello')
  for (let i = 0; i < RECYCLES; i++) {
    const { id } = openPool()
    const recycled = events.next('drainpipe:pool:recycle', (m) => m.id === id)
    const closed = events.next('drainpipe:pool:close', (m) => m.id === id)
    clock.advance(AGE / 2)
    await get('/hello') // the origin is busy, so the expiry recycles rather than closing as idle
    clock.advance(AGE / 2)
    expect((await recycled).result).toBe('ok')
    expect(await closed).toMatchObject({ reason: 'successor-ready', age: AGE })
  }

  const bodies = await Promise.all(Array.from({ length: FLAKY }, (_, i) => get(`/flaky?id=${i}`)))
  expect(bodies).toEqual(Array.from({ length: FLAKY }, (_, i) => String(i)))

  const { id } = openPool()
  const goaway = events.next('drainpipe:pool:goaway', (m) => m.id === id)
  const closed = events.next('drainpipe:pool:close', (m) => m.id === id)
  const replaced = events.next('drainpipe:pool:connect')
  // Graceful server shutdown of the connection: GOAWAY, then close.
  for (const session of backend.sessions) session.close()
  await goaway
  expect((await closed).reason).toBe('goaway')
  // Nothing was waiting: the replacement is made for the next request, not before.
  expect(await get('/hello')).toBe('hello')
  await replaced

  await client.close()
  const stats = client.stats()
  // The scenario itself, as the client and the server saw it.
  expect(stats.recycles).toEqual({ ok: RECYCLES, failed: 0 })
  expect(stats.retries).toBe(FLAKY)
  expect(stats.goaways).toBe(1)
  expect(stats.pingTimeouts).toBe(0)
  expect(backend.connections).toBe(RECYCLES + 2)
  expect(backend.requests).toBe(1 + RECYCLES + 2 * FLAKY + 1)
  return { client, backend, stats }
}

/** Sum of a prom-client metric's samples (`name` may be a histogram's `_count` / `_sum`) whose labels include `labels`. */
async function prom(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  let total = 0
  for (const metric of await registry.getMetricsAsJSON()) {
    for (const sample of metric.values) {
      const sampleName = (sample as { metricName?: string }).metricName ?? metric.name
      if (sampleName !== name) continue
      if (Object.entries(labels).every(([key, value]) => sample.labels[key] === value)) total += sample.value
    }
  }
  return total
}

describe('instrumentPrometheus', () => {
  it('reports exactly what client.stats() and the server counted', async () => {
    const registry = new Registry()
    cleanup.push(instrumentPrometheus(registry))
    const { stats, backend, client } = await scripted()
    const origin = Object.keys(stats.origins)[0]!

    expect(await prom(registry, 'drainpipe_recycles_total', { origin, result: 'ok' })).toBe(stats.recycles.ok)
    expect(await prom(registry, 'drainpipe_recycles_total', { origin, result: 'failed' })).toBe(stats.recycles.failed)
    expect(await prom(registry, 'drainpipe_goaways_total', { origin, code: 'NO_ERROR' })).toBe(stats.goaways)
    expect(await prom(registry, 'drainpipe_ping_timeouts_total')).toBe(stats.pingTimeouts)
    expect(await prom(registry, 'drainpipe_retries_total', { origin, reason: 'DRAINPIPE_REFUSED_STREAM' })).toBe(stats.retries)
    expect(await prom(registry, 'drainpipe_retries_total')).toBe(stats.retries)

    expect(await prom(registry, 'drainpipe_pool_connects_total', { origin })).toBe(backend.connections)
    expect(await prom(registry, 'drainpipe_pool_connect_seconds_count', { origin })).toBe(backend.connections)
    expect(await prom(registry, 'drainpipe_pool_connect_failures_total')).toBe(0)
    expect(await prom(registry, 'drainpipe_drains_total', { reason: 'successor-ready' })).toBe(RECYCLES)
    expect(await prom(registry, 'drainpipe_drains_total', { reason: 'goaway' })).toBe(1)
    expect(await prom(registry, 'drainpipe_drains_total')).toBe(backend.connections)

    // Every connection closed: one age and one requests observation each; the
    // recycled ones lived exactly AGE on the manual clock.
    expect(await prom(registry, 'drainpipe_pool_age_seconds_count')).toBe(backend.connections)
    expect(await prom(registry, 'drainpipe_pool_age_seconds_count', { reason: 'successor-ready' })).toBe(RECYCLES)
    expect(await prom(registry, 'drainpipe_pool_age_seconds_sum', { reason: 'successor-ready' })).toBeCloseTo((RECYCLES * AGE) / 1000, 9)
    expect(await prom(registry, 'drainpipe_pool_age_seconds_count', { reason: 'goaway' })).toBe(1)
    expect(await prom(registry, 'drainpipe_pool_requests_count', { origin })).toBe(backend.connections)
    expect(await prom(registry, 'drainpipe_pool_requests_sum', { origin })).toBe(backend.requests) // refused attempts are streams too
    expect(await prom(registry, 'drainpipe_pools_open', { origin })).toBe(0)
    expect(client.stats().origins[origin]!.pools).toEqual([])
  })

  it('counts failed connects without observing an age for them, and stops when unsubscribed', async () => {
    const registry = new Registry()
    const stop = instrumentPrometheus(registry, { prefix: 'app_http2_' })
    cleanup.push(stop)
    const client = new Client({ lookup: tableLookup({}).lookup, connect: { ca: pki.ca } })
    cleanup.push(() => client.destroy())
    await expect(client.request('https://nowhere.test/')).rejects.toThrow(/nowhere\.test/)
    expect(await prom(registry, 'app_http2_pool_connect_failures_total', { origin: 'https://nowhere.test' })).toBe(1)
    expect(await prom(registry, 'app_http2_pool_connects_total')).toBe(0)
    expect(await prom(registry, 'app_http2_pool_age_seconds_count')).toBe(0)
    expect(await prom(registry, 'app_http2_recycles_total', { origin: 'https://nowhere.test', result: 'failed' })).toBe(0)

    stop()
    await expect(client.request('https://nowhere.test/')).rejects.toThrow(/nowhere\.test/)
    expect(await prom(registry, 'app_http2_pool_connect_failures_total')).toBe(1)
  })
})

/** A pull reader, as a Prometheus exporter is: metrics are read when `collect()` is called. */
class PullReader extends MetricReader {
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

function otelSdk() {
  const reader = new PullReader()
  const meterProvider = new MeterProvider({ readers: [reader] })
  const spans = new InMemorySpanExporter()
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] })
  cleanup.push(async () => {
    await meterProvider.shutdown()
    await tracerProvider.shutdown()
  })
  return { reader, meterProvider, tracerProvider, spans }
}

/** Sum over an OpenTelemetry metric's points whose attributes include `attributes`: the value of a sum, or a histogram's count / sum. */
function otel(metrics: ResourceMetrics, name: string, attributes: Record<string, string | number> = {}, field: 'count' | 'sum' = 'count'): number {
  let total = 0
  for (const scope of metrics.scopeMetrics) {
    for (const metric of scope.metrics) {
      if (metric.descriptor.name !== name) continue
      for (const point of metric.dataPoints) {
        if (!Object.entries(attributes).every(([key, value]) => point.attributes[key] === value)) continue
        if (metric.dataPointType === DataPointType.HISTOGRAM) total += (point.value as Histogram)[field] ?? 0
        else total += point.value as number
      }
    }
  }
  return total
}

describe('instrumentOpenTelemetry', () => {
  it('metrics: exactly what client.stats() and the server counted', async () => {
    const { reader, meterProvider, tracerProvider } = otelSdk()
    cleanup.push(instrumentOpenTelemetry({ meterProvider, tracerProvider }))
    const { stats, backend } = await scripted()
    const { resourceMetrics: m, errors } = await reader.collect()
    expect(errors).toEqual([])
    const server = { 'server.address': 'api.test', 'server.port': backend.port, 'url.scheme': 'https' }

    expect(otel(m, 'drainpipe.recycles', { ...server, 'drainpipe.recycle.result': 'ok' })).toBe(stats.recycles.ok)
    expect(otel(m, 'drainpipe.recycles', { 'drainpipe.recycle.result': 'failed' })).toBe(stats.recycles.failed)
    expect(otel(m, 'drainpipe.goaways', { ...server, 'drainpipe.goaway.error_code': 'NO_ERROR' })).toBe(stats.goaways)
    expect(otel(m, 'drainpipe.ping_timeouts')).toBe(stats.pingTimeouts)
    expect(otel(m, 'drainpipe.retries', { ...server, 'drainpipe.retry.reason': 'DRAINPIPE_REFUSED_STREAM' })).toBe(stats.retries)
    expect(otel(m, 'drainpipe.pool.connects', server)).toBe(backend.connections)
    expect(otel(m, 'drainpipe.pool.connect.duration', server)).toBe(backend.connections)
    expect(otel(m, 'drainpipe.pool.connect_failures')).toBe(0)
    expect(otel(m, 'drainpipe.pool.open', server)).toBe(0)
    expect(otel(m, 'drainpipe.drains', { 'drainpipe.drain.reason': 'successor-ready' })).toBe(RECYCLES)
    expect(otel(m, 'drainpipe.drains', { 'drainpipe.drain.reason': 'goaway' })).toBe(1)
    expect(otel(m, 'drainpipe.pool.age')).toBe(backend.connections)
    expect(otel(m, 'drainpipe.pool.age', { 'drainpipe.close.reason': 'successor-ready' })).toBe(RECYCLES)
    expect(otel(m, 'drainpipe.pool.age', { 'drainpipe.close.reason': 'successor-ready' }, 'sum')).toBeCloseTo((RECYCLES * AGE) / 1000, 9)
    expect(otel(m, 'drainpipe.pool.requests', server)).toBe(backend.connections)
    expect(otel(m, 'drainpipe.pool.requests', server, 'sum')).toBe(backend.requests)
  })

  it('spans: one per connection, from connect to close, with recycle links, events and the requests served', async () => {
    const { meterProvider, tracerProvider, spans } = otelSdk()
    cleanup.push(instrumentOpenTelemetry({ meterProvider, tracerProvider }))
    const { backend } = await scripted()
    const finished = spans.getFinishedSpans()
    const connections = finished.filter((span) => span.name === 'drainpipe.connection')
    expect(finished.length).toBe(connections.length)
    expect(connections.length).toBe(backend.connections)
    for (const span of connections) {
      expect(span.ended).toBe(true)
      expect(span.attributes).toMatchObject({ 'server.address': 'api.test', 'server.port': backend.port, 'network.peer.address': '127.0.0.2' })
      expect(span.status.code).toBe(SpanStatusCode.UNSET)
      expect(span.events[0]!.name).toBe('connected')
    }
    const served = connections.reduce((sum, span) => sum + (span.attributes['drainpipe.pool.served'] as number), 0)
    expect(served).toBe(backend.requests)

    const byReason = (reason: string) => connections.filter((span) => span.attributes['drainpipe.close.reason'] === reason)
    expect(byReason('successor-ready').length).toBe(RECYCLES)
    expect(byReason('goaway').length).toBe(1)
    expect(byReason('close-requested').length).toBe(1)
    const eventsNamed = (span: ReadableSpan, name: string) => span.events.filter((event) => event.name === name)
    for (const span of byReason('successor-ready')) {
      expect(eventsNamed(span, 'recycle').map((event) => event.attributes?.['drainpipe.recycle.result'])).toEqual(['ok'])
      expect(span.attributes['drainpipe.pool.age_ms']).toBe(AGE)
    }
    const [goaway] = byReason('goaway')
    expect(eventsNamed(goaway!, 'goaway').map((event) => event.attributes?.['drainpipe.goaway.error_code'])).toEqual(['NO_ERROR'])
    expect(eventsNamed(goaway!, 'drain').map((event) => event.attributes?.['drainpipe.drain.reason'])).toEqual(['goaway'])

    // Each recycle's successor links to the connection it replaced.
    const byId = new Map(connections.map((span) => [span.attributes['drainpipe.pool.id'] as number, span]))
    const successors = connections.filter((span) => span.links.length > 0)
    expect(successors.length).toBe(RECYCLES)
    for (const span of successors) {
      const predecessor = byId.get(span.attributes['drainpipe.pool.successor_of'] as number)!
      expect(span.links[0]!.context.spanId).toBe(predecessor.spanContext().spanId)
      const recycle = eventsNamed(predecessor, 'recycle')[0]!
      expect(recycle.attributes?.['drainpipe.recycle.successor']).toBe(span.attributes['drainpipe.pool.id'])
    }
  })

  it('a failed connect is a drainpipe.connect span with status ERROR; uses the global providers by default', async () => {
    const { metrics, trace } = await import('@opentelemetry/api')
    const { reader, meterProvider, tracerProvider, spans } = otelSdk()
    metrics.setGlobalMeterProvider(meterProvider)
    trace.setGlobalTracerProvider(tracerProvider)
    cleanup.push(() => {
      metrics.disable()
      trace.disable()
    })
    cleanup.push(instrumentOpenTelemetry())
    const client = new Client({ lookup: tableLookup({}).lookup })
    cleanup.push(() => client.destroy())
    await expect(client.request('https://nowhere.test/')).rejects.toThrow(/nowhere\.test/)
    const [span, ...rest] = spans.getFinishedSpans()
    expect(rest).toEqual([])
    expect(span!.name).toBe('drainpipe.connect')
    expect(span!.status.code).toBe(SpanStatusCode.ERROR)
    expect(span!.events.map((event) => event.name)).toEqual(['exception'])
    const { resourceMetrics } = await reader.collect()
    expect(otel(resourceMetrics, 'drainpipe.pool.connect_failures', { 'server.address': 'nowhere.test', 'server.port': 443 })).toBe(1)
    expect(otel(resourceMetrics, 'drainpipe.pool.connects')).toBe(0)
  })
})

// ── drainpipe behaviour the instrumentations rely on ─────────────────────

/** Rejects if `promise` has not settled within `ms`: a failure bound, not a synchronisation. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)
  })
  return Promise.race([promise, bound]).finally(() => clearTimeout(timer))
}

describe('pool close after a server GOAWAY', () => {
  // Every connection's age / requests observation and its span end come from
  // drainpipe:pool:close. A node:http2 server that sends GOAWAY (session.goaway())
  // but leaves the socket open, as backend.goaway() does, must not leave the
  // drained pool, with no streams left, in 'draining' until drainTimeout.
  it('a pool drained by GOAWAY with no streams left closes, and client.close() resolves, without waiting for drainTimeout', async () => {
    const backend = await startBackend({ host: '127.0.0.2' })
    const client = new Client({ connect: { ca: pki.ca }, lookup: tableLookup({ 'api.test': [backend.host] }).lookup })
    cleanup.push(async () => {
      await client.destroy()
      await backend.close()
    })
    const base = `https://api.test:${backend.port}`
    expect(await (await client.request(`${base}/hello`)).body.text()).toBe('hello')
    const events = record('drainpipe:pool:drain', 'drainpipe:pool:close')
    cleanup.push(() => events.stop())
    const drained = events.next('drainpipe:pool:drain')
    const closed = events.next('drainpipe:pool:close')
    backend.goaway()
    expect(await drained).toMatchObject({ reason: 'goaway', inFlight: 0 })
    // Default drainTimeout is 30 s; the pool has nothing left to drain.
    await within(closed, 5_000, "the drained pool's drainpipe:pool:close")
    await within(client.close(), 5_000, 'client.close()')
  })
})

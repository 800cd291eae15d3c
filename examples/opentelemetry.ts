/**
 * Example: OpenTelemetry metrics and traces for drainpipe.
 *
 * drainpipe does not depend on OpenTelemetry. It publishes its lifecycle on
 * `node:diagnostics_channel` channels named `drainpipe:*`, and
 * `instrumentOpenTelemetry()` below records them through
 * `@opentelemetry/api` only, so it works with whatever SDK and exporters
 * (OTLP, Prometheus, console) the application registered:
 *
 * - metrics from the meter `drainpipe`: connects, connect duration, open
 *   connections, recycles by result, drains by reason, GOAWAYs, PING
 *   timeouts, retries by reason, and per connection at close its age and
 *   the requests it served;
 * - a span per connection (`drainpipe.connection`), from the start of the
 *   connect to the close, with the origin, the resolved address, why it
 *   closed and how many requests it served; what happened to it (recycle,
 *   drain, GOAWAY, PING timeout) as events; a recycled connection's
 *   successor links to it. A failed connect is a short `drainpipe.connect`
 *   span with status ERROR.
 *
 * Run: npx tsx examples/opentelemetry.ts
 *
 * `main` registers the SDK (a MeterProvider with an in-memory exporter, a
 * BasicTracerProvider with an in-memory span exporter), starts two local
 * HTTP/2 servers on 127.0.0.2 and 127.0.0.3 behind the name api.test, sends
 * a short load with `maxConnectionAge: 200`, has the servers close their
 * connections gracefully once (GOAWAY), and prints the spans and metrics.
 */
import diagnostics from 'node:diagnostics_channel'
import {
  metrics,
  trace,
  SpanKind,
  SpanStatusCode,
  type Attributes,
  type MeterProvider,
  type Span,
  type TracerProvider,
} from '@opentelemetry/api'
import { Client, type ChannelMessages, type ChannelName } from '../lib/index.js' // in your app: from 'drainpipe-http2'

const SCOPE = 'drainpipe'

export interface OpenTelemetryOptions {
  /** Where the metrics go. Default: the global one (`metrics.getMeter('drainpipe')`); register the SDK first. */
  meterProvider?: MeterProvider
  /** Where the spans go. Default: the global one (`trace.getTracer('drainpipe')`). */
  tracerProvider?: TracerProvider
}

/** HTTP/2 error code names (RFC 9113, section 7). */
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

/** The semantic-convention attributes of an origin (`https://api.test:8443`). */
function originAttributes(origin: string): Attributes {
  const url = new URL(origin)
  const scheme = url.protocol.slice(0, -1)
  const port = url.port === '' ? (scheme === 'https' ? 443 : 80) : Number(url.port)
  return { 'url.scheme': scheme, 'server.address': url.hostname, 'server.port': port }
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
 * Records drainpipe's lifecycle, for every `Client` in the process, as
 * OpenTelemetry metrics and spans. Returns a function that stops recording
 * (and ends the spans of connections still open).
 */
export function instrumentOpenTelemetry(options: OpenTelemetryOptions = {}): () => void {
  const meter = options.meterProvider?.getMeter(SCOPE) ?? metrics.getMeter(SCOPE)
  const tracer = options.tracerProvider?.getTracer(SCOPE) ?? trace.getTracer(SCOPE)

  const counter = (name: string, description: string, unit: string) => meter.createCounter(name, { description, unit })
  const histogram = (name: string, description: string, unit: string, explicitBucketBoundaries: number[]) =>
    meter.createHistogram(name, { description, unit, advice: { explicitBucketBoundaries } })
  const connects = counter('drainpipe.pool.connects', 'HTTP/2 connections established.', '{connection}')
  const connectFailures = counter('drainpipe.pool.connect_failures', 'Connection attempts that failed (DNS, TCP, TLS, ALPN or timeout).', '{connection}')
  const connectDuration = histogram(
    'drainpipe.pool.connect.duration',
    'Time to establish a connection: DNS lookup, TCP, TLS and the server SETTINGS.',
    's',
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  )
  const openConnections = meter.createUpDownCounter('drainpipe.pool.open', {
    description: 'Connections established and not yet closed (draining ones included).',
    unit: '{connection}',
  })
  const recycles = counter('drainpipe.recycles', 'Planned replacements of connections that reached their maximum age, by result.', '{recycle}')
  const drains = counter('drainpipe.drains', 'Connections that became read-only and drained their in-flight streams, by reason.', '{connection}')
  const goaways = counter('drainpipe.goaways', 'GOAWAY frames received from servers, by HTTP/2 error code.', '{goaway}')
  const pingTimeouts = counter('drainpipe.ping_timeouts', 'Connections declared dead because a PING was not acknowledged in time.', '{connection}')
  const retries = counter('drainpipe.retries', 'Requests sent again because the server provably did not process them, by reason.', '{request}')
  const ejections = counter('drainpipe.ejections', 'Addresses ejected by outlier detection after failures in a row.', '{address}')
  const age = histogram(
    'drainpipe.pool.age',
    'How long connections lived, observed when they close, by close reason.',
    's',
    [0.1, 0.25, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600],
  )
  const served = histogram(
    'drainpipe.pool.requests',
    'Requests (streams) a connection served in its life, observed when it closes.',
    '{request}',
    [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000],
  )

  /** The span of every connection that is up, by pool id. */
  const spans = new Map<number, { span: Span; origin: string }>()
  const attributesOf = new Map<string, Attributes>()
  const common = (origin: string): Attributes => {
    let attributes = attributesOf.get(origin)
    if (attributes === undefined) {
      attributes = originAttributes(origin)
      attributesOf.set(origin, attributes)
    }
    return attributes
  }

  const unsubscribe = subscribe({
    'drainpipe:pool:connect'({ origin, id, address, connectDuration: duration }) {
      const attributes = common(origin)
      connects.add(1, attributes)
      connectDuration.record(duration / 1000, attributes)
      openConnections.add(1, attributes)
      const now = Date.now()
      // The span covers the connection from its first DNS lookup; the `connected` event marks the handshake's end.
      const span = tracer.startSpan('drainpipe.connection', {
        kind: SpanKind.INTERNAL,
        startTime: now - duration,
        attributes: {
          ...attributes,
          'network.peer.address': address ?? '',
          'drainpipe.pool.id': id,
          'drainpipe.connect.duration_ms': duration,
        },
      })
      span.addEvent('connected', now)
      spans.set(id, { span, origin })
    },
    'drainpipe:pool:connect-failed'({ origin, id, address, error }) {
      const attributes = common(origin)
      connectFailures.add(1, attributes)
      const span = tracer.startSpan('drainpipe.connect', {
        kind: SpanKind.INTERNAL,
        attributes: { ...attributes, 'drainpipe.pool.id': id, ...(address ? { 'network.peer.address': address } : {}) },
      })
      span.recordException(error)
      span.setStatus({ code: SpanStatusCode.ERROR, message: error.message })
      span.end()
    },
    'drainpipe:pool:recycle'({ origin, id, result, reason, successor }) {
      recycles.add(1, { ...common(origin), 'drainpipe.recycle.result': result })
      const old = spans.get(id)?.span
      old?.addEvent('recycle', {
        'drainpipe.recycle.result': result,
        ...(successor !== undefined ? { 'drainpipe.recycle.successor': successor } : { 'drainpipe.recycle.error': reason }),
      })
      const next = successor !== undefined ? spans.get(successor)?.span : undefined
      if (old && next) {
        next.setAttribute('drainpipe.pool.successor_of', id)
        next.addLink({ context: old.spanContext(), attributes: { 'drainpipe.link': 'predecessor' } })
      }
    },
    'drainpipe:pool:drain'({ origin, id, reason, inFlight }) {
      drains.add(1, { ...common(origin), 'drainpipe.drain.reason': reason })
      spans.get(id)?.span.addEvent('drain', { 'drainpipe.drain.reason': reason, 'drainpipe.drain.in_flight': inFlight })
    },
    'drainpipe:pool:goaway'({ origin, id, errorCode, lastStreamId, debug }) {
      const code = h2ErrorName(errorCode)
      goaways.add(1, { ...common(origin), 'drainpipe.goaway.error_code': code })
      spans.get(id)?.span.addEvent('goaway', {
        'drainpipe.goaway.error_code': code,
        'drainpipe.goaway.last_stream_id': lastStreamId,
        ...(debug ? { 'drainpipe.goaway.debug': debug } : {}),
      })
    },
    'drainpipe:pool:ping-timeout'({ origin, id, interval, timeout }) {
      pingTimeouts.add(1, common(origin))
      spans.get(id)?.span.addEvent('ping_timeout', { 'drainpipe.ping.interval_ms': interval, 'drainpipe.ping.timeout_ms': timeout })
    },
    'drainpipe:pool:ping-backoff'({ id, interval }) {
      spans.get(id)?.span.addEvent('ping_backoff', { 'drainpipe.ping.interval_ms': interval })
    },
    'drainpipe:request:retry'({ origin, reason }) {
      // A metric only: the event is published from the connection's callbacks, whose async
      // context belongs to whichever request opened the connection, not to the retried one.
      retries.add(1, { ...common(origin), 'drainpipe.retry.reason': reason })
    },
    'drainpipe:address:ejected'({ origin, address }) {
      ejections.add(1, { ...common(origin), 'network.peer.address': address })
    },
    'drainpipe:pool:close'({ origin, id, reason, age: ageMs, served: count, error }) {
      const entry = spans.get(id)
      if (entry === undefined) return // never connected: reported as connect-failed
      spans.delete(id)
      const attributes = common(origin)
      openConnections.add(-1, attributes)
      age.record(ageMs / 1000, { ...attributes, 'drainpipe.close.reason': reason })
      served.record(count, attributes)
      const { span } = entry
      span.setAttributes({ 'drainpipe.close.reason': reason, 'drainpipe.pool.served': count, 'drainpipe.pool.age_ms': ageMs })
      if (error) {
        span.recordException(error)
        span.setStatus({ code: SpanStatusCode.ERROR, message: error.message })
      } else if (reason === 'drain-deadline' || reason === 'ping-timeout') {
        span.setStatus({ code: SpanStatusCode.ERROR, message: reason })
      }
      span.end()
    },
  })

  return () => {
    unsubscribe()
    for (const { span } of spans.values()) {
      span.setAttribute('drainpipe.close.reason', 'instrumentation-stopped')
      span.end()
    }
    spans.clear()
  }
}

// ── The demo ──────────────────────────────────────────────────────────────

async function main(): Promise<void> {
  const { MeterProvider, PeriodicExportingMetricReader, InMemoryMetricExporter, AggregationTemporality, DataPointType } = await import(
    '@opentelemetry/sdk-metrics'
  )
  const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = await import('@opentelemetry/sdk-trace-base')
  // Test helpers of this repository: local TLS HTTP/2 servers and a DNS table.
  const { startBackends, tableLookup } = await import('../test/helpers/h2-server.js')
  const { pki } = await import('../test/helpers/pki.js')

  // The application's SDK setup (in production: OTLP exporters instead of in-memory ones).
  const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
  const metricReader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 60_000 })
  const meterProvider = new MeterProvider({ readers: [metricReader] })
  const spanExporter = new InMemorySpanExporter()
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spanExporter)] })
  metrics.setGlobalMeterProvider(meterProvider)
  trace.setGlobalTracerProvider(tracerProvider)

  // After the SDK is registered: the global meter and tracer are the SDK's.
  const stop = instrumentOpenTelemetry()

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
        // The servers close their connections gracefully (GOAWAY, then close once their streams are done).
        for (const backend of backends) for (const session of backend.sessions) session.close()
      }
    }
  }
  await Promise.all(Array.from({ length: 4 }, worker))
  await client.close()
  await Promise.all(backends.map((backend) => backend.close()))
  stop()

  const stats = client.stats()
  console.log(
    `${sent} requests; client.stats(): recycles ok=${stats.recycles.ok} failed=${stats.recycles.failed}, goaways=${stats.goaways}, pingTimeouts=${stats.pingTimeouts}, retries=${stats.retries}`,
  )

  const finished = spanExporter.getFinishedSpans()
  console.log(`\nspans (${finished.length}):`)
  for (const span of finished) {
    const a = span.attributes
    const ms = span.duration[0] * 1e3 + span.duration[1] / 1e6
    const events = span.events.map((event) => {
      const detail = Object.entries(event.attributes ?? {})
        .map(([key, value]) => `${key.replace(/^drainpipe\.\w+\./, '')}=${String(value)}`)
        .join(' ')
      return detail ? `${event.name}(${detail})` : event.name
    })
    const links = span.links.length > 0 ? ` successor of #${String(a['drainpipe.pool.successor_of'])}` : ''
    console.log(
      `  ${span.name} #${String(a['drainpipe.pool.id'])} ${String(a['server.address'])} -> ${String(a['network.peer.address'])}` +
        ` ${ms.toFixed(0)} ms, served ${String(a['drainpipe.pool.served'])}, closed: ${String(a['drainpipe.close.reason'])}` +
        ` [status ${SpanStatusCode[span.status.code]}]${links}`,
    )
    console.log(`      events: ${events.join(', ')}`)
  }

  await metricReader.forceFlush()
  const exported = metricExporter.getMetrics().at(-1)
  console.log('\nmetrics:')
  for (const scope of exported?.scopeMetrics ?? []) {
    for (const metric of scope.metrics) {
      for (const point of metric.dataPoints) {
        const labels = Object.entries(point.attributes)
          .filter(([key]) => !key.startsWith('server.') && !key.startsWith('url.'))
          .map(([key, value]) => `${key}=${String(value)}`)
          .join(',')
        const name = `${metric.descriptor.name}${labels ? `{${labels}}` : ''}`
        if (metric.dataPointType === DataPointType.HISTOGRAM) {
          const value = point.value as { count: number; sum?: number; min?: number; max?: number }
          const seconds = metric.descriptor.unit === 's'
          const show = (x: number | undefined) => (x === undefined ? '-' : seconds ? `${x.toFixed(3)} s` : String(x))
          console.log(`  ${name}: count=${value.count} sum=${show(value.sum)} min=${show(value.min)} max=${show(value.max)}`)
        } else {
          console.log(`  ${name}: ${String(point.value)}`)
        }
      }
    }
  }

  await meterProvider.shutdown()
  await tracerProvider.shutdown()
}

// Run the demo only when executed directly, not when imported (tests import instrumentOpenTelemetry).
if (process.argv[1] !== undefined && import.meta.url === (await import('node:url')).pathToFileURL(process.argv[1]).href) {
  await main()
}

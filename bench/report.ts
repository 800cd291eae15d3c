/**
 * A run's measurements as tables (terminal and bench/RESULTS.md): throughput
 * per scenario, latency, memory, gRPC, and the targets last.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { RAW, SCENARIO_TITLES, THROUGHPUT_SCENARIOS, UNDICI, median, ratio, rowName, type IdleOriginsResult, type LatencyResult } from './common.js'
import { formatBytes, formatMicros, formatNumber, formatRatio, markdownTable, terminalTable, type Table } from './format.js'
import type { Plan } from './plan.js'
import { latencyRow, type Measurements } from './results.js'

export function figureTables(plan: Plan, measured: Measurements): Table[] {
  return [...throughputTables(plan, measured), ...latencyTables(plan, measured), ...memoryTables(plan, measured)]
}

function throughputTables(plan: Plan, measured: Measurements): Table[] {
  const tables: Table[] = []
  for (const scenario of THROUGHPUT_SCENARIOS) {
    if (!measured.hasThroughput(scenario)) continue
    const raw = measured.rate(scenario, RAW)
    const undici = measured.rate(scenario, UNDICI)
    const large = scenario === 'upload' || scenario === 'download'
    const digits = large ? 1 : 0
    const rows: string[][] = []
    const nativeRuns = measured.native.get(scenario)
    if (nativeRuns?.length) {
      const value = median(nativeRuns)
      rows.push(['h2load (native limit)', formatNumber(value, digits), formatRatio(ratio(value, raw)), formatRatio(ratio(value, undici)), spread(nativeRuns), '—', '1'])
    }
    for (const row of plan.rows) {
      const list = measured.throughput(scenario, row.name)
      if (!list.length) {
        rows.push([row.name, 'failed', '—', '—', '—', '—', '—'])
        continue
      }
      const value = measured.rate(scenario, row.name)
      const cpu = measured.cpu(scenario, row.name)
      const connections = [...new Set(list.map((result) => result.connections))].join('/')
      const cpuText = large ? `${formatNumber((cpu ?? NaN) / 1000, 1)} ms` : `${formatNumber(cpu)} µs`
      rows.push([row.name, formatNumber(value, digits), formatRatio(ratio(value, raw)), formatRatio(ratio(value, undici)), spread(list.map((r) => r.value)), cpuText, connections])
    }
    tables.push({
      title: SCENARIO_TITLES[scenario],
      head: ['client', 'median', '× raw h2', '× undici', 'spread', 'CPU/req', 'conns'],
      right: [1, 2, 3, 4, 5, 6],
      rows,
    })
  }
  return tables
}

/** Half the range of the runs around their median. */
function spread(values: number[]): string {
  if (values.length < 2) return '—'
  const mid = median(values)
  return `±${(((Math.max(...values) - Math.min(...values)) / 2 / mid) * 100).toFixed(0)}%`
}

function latencyTables(plan: Plan, measured: Measurements): Table[] {
  const groups = measured.latencyRows()
  if (groups.length === 0) return []
  const rawP99 = measured.latency(RAW, 'p99')
  const undiciP99 = measured.latency(UNDICI, 'p99')
  const splitNotes = plan.engines.flatMap((engine) => {
    const name = latencyRow({ client: 'drainpipe request()', engine, recycleMs: plan.latency.recycleMs })
    const splits = (groups.find(([key]) => key === name)?.[1] ?? []).filter((result) => result.duringRecycle && result.outsideRecycle)
    return splits.length ? [splitNote(name, splits)] : []
  })
  return [
    {
      title: `Latency at ${formatNumber(plan.latency.rate)} req/s, small GET (from the intended send time; median of runs)`,
      head: ['client', 'p50', 'p99', 'p99.9', 'max', 'p99 × raw', 'p99 × undici', 'recycles', 'runs'],
      right: [1, 2, 3, 4, 5, 6, 7, 8],
      rows: groups.map(([key, list]) => [
        key,
        formatMicros(measured.latency(key, 'p50')),
        formatMicros(measured.latency(key, 'p99')),
        formatMicros(measured.latency(key, 'p999')),
        formatMicros(measured.latency(key, 'max')),
        formatRatio(ratio(measured.latency(key, 'p99'), rawP99)),
        formatRatio(ratio(measured.latency(key, 'p99'), undiciP99)),
        String(median(list.map((result) => result.recycles))),
        String(list.length),
      ]),
      notes: [`p99 of each run: ${groups.map(([key, list]) => `${key}: ${list.map((r) => formatMicros(r.p99)).join(', ')}`).join('; ')}`, ...splitNotes],
    },
  ]
}

/** The recycling runs' own requests, split into those in flight during a recycle and the others. */
function splitNote(name: string, splits: LatencyResult[]): string {
  const of = (part: 'duringRecycle' | 'outsideRecycle', field: 'count' | 'p50' | 'p99' | 'max') => median(splits.map((r) => r[part]![field]))
  const summary = (part: 'duringRecycle' | 'outsideRecycle') =>
    `p50 ${formatMicros(of(part, 'p50'))}, p99 ${formatMicros(of(part, 'p99'))}, max ${formatMicros(of(part, 'max'))}`
  return `${name}, within its runs (same process, same moment, so the same load from the rest of the machine): ${formatNumber(of('duringRecycle', 'count'))} requests per run were in flight while a recycle was under way (successor connecting → predecessor closed): ${summary('duringRecycle')}; the other ${formatNumber(of('outsideRecycle', 'count'))}: ${summary('outsideRecycle')} (medians of runs).`
}

function memoryTables(plan: Plan, measured: Measurements): Table[] {
  const rows: string[][] = []
  const per1000 = (bytes: number, count: number) => (count > 0 ? (bytes * 1000) / count : undefined)
  for (const r of measured.recycles) {
    const heap = r.heapAfter - r.heapBefore
    const rss = r.rssAfter - r.rssBefore
    const drainpipe = r.client === 'drainpipe'
    rows.push([
      drainpipe
        ? `${rowName(r.client, r.engine)}, ${formatNumber(r.recycles)} recycles (age ${plan.recycles.ageMs} ms, ${plan.recycles.trickle} requests in flight)`
        : `${r.client}, ${formatNumber(r.recycles)} connect → request → close cycles (reference)`,
      formatBytes(heap),
      formatBytes(rss),
      `${formatBytes(per1000(heap, r.recycles))} heap / ${formatBytes(per1000(rss, r.recycles))} RSS per 1,000; ${formatNumber((r.recycles * 1000) / r.elapsedMs)}/s; ${formatNumber(r.requests)} requests${drainpipe ? `, ${r.failed} failed recycles` : ''}`,
    ])
  }
  const perOrigin = (result: IdleOriginsResult | undefined, field: 'heap' | 'rss') =>
    result === undefined ? undefined : field === 'heap' ? (result.heapAfter - result.heapBefore) / result.origins : (result.rssAfter - result.rssBefore) / result.origins
  const idleRaw = measured.idle.find((result) => result.client === RAW)
  const idleUndici = measured.idle.find((result) => result.client === 'undici Agent H2')
  for (const result of measured.idle) {
    const heap = perOrigin(result, 'heap')
    rows.push([
      `${rowName(result.client, result.engine)}, ${formatNumber(result.origins)} idle origins (per origin)`,
      formatBytes(heap),
      formatBytes(perOrigin(result, 'rss')),
      `heap ${formatRatio(ratio(heap, perOrigin(idleRaw, 'heap')))} raw, ${formatRatio(ratio(heap, perOrigin(idleUndici, 'heap')))} undici; ${result.connections} connections open`,
    ])
  }
  return rows.length ? [{ title: 'Memory (after forced GC)', head: ['case', 'heap growth', 'RSS growth', 'notes'], right: [1, 2], rows }] : []
}

export function printReport(title: string, environment: string[], tables: Table[], failures: string[]): void {
  console.log(`\n${title}`)
  console.log(environment.join('\n'))
  for (const table of tables) console.log(`\n${terminalTable(table)}`)
  if (failures.length) {
    console.log('\nMeasurements that failed:')
    for (const failure of failures) console.log(`  - ${failure}`)
  }
}

const NOTES_START = '<!-- notes:start (kept when the full run regenerates this file) -->'
const NOTES_END = '<!-- notes:end -->'

/** Rewrites RESULTS.md: the generated sections anew, the hand-written analysis between the notes markers kept. */
export function writeResults(file: string, environment: string[], tables: Table[], failures: string[]): void {
  const notes = existingNotes(file) ?? '_No analysis recorded yet._'
  const markdown = [
    '# drainpipe benchmark results',
    '',
    'Generated by `npm run bench` (the full run); the tables are rewritten on every full run, the analysis between the notes markers is kept. How the figures are made: [README.md](README.md).',
    '',
    '## Environment',
    '',
    ...environment,
    '',
    '## Results',
    '',
    'Ratios: each figure divided by the same figure of raw `node:http2` (one session, the lower bound of overhead) and of undici 7 `Client` with `allowH2` (pipelining 100). Higher is better for throughput, lower for latency. drainpipe\'s rows are measured on each HTTP/2 engine: `[wire]` (its own, the default) and `[node]` (node:http2). "spread" is half the range of the runs around the median; "CPU/req" the client process\'s CPU time per request or transfer (user + system, all threads, GC included; it depends much less than the rate on how busy the machine was); "conns" the TCP connections the client had open at the end of a run.',
    '',
    ...tables.flatMap((table) => [markdownTable(table), '']),
    ...(failures.length ? ['### Measurements that failed', '', ...failures.map((failure) => `- ${failure.replaceAll('\n', ' ')}`), ''] : []),
    '## Analysis',
    '',
    NOTES_START,
    notes,
    NOTES_END,
    '',
  ].join('\n')
  writeFileSync(file, markdown)
  console.log(`\nwrote ${path.relative(process.cwd(), file)}`)
}

/** The hand-written analysis in an existing RESULTS.md, to carry over. */
function existingNotes(file: string): string | undefined {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch {
    return undefined
  }
  const start = text.indexOf(NOTES_START)
  const end = text.indexOf(NOTES_END)
  if (start === -1 || end === -1 || end < start) return undefined
  return text.slice(start + NOTES_START.length, end).trim()
}

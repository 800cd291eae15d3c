/**
 * drainpipe benchmarks.
 *
 *   npm run bench                 full run (several minutes), rewrites bench/RESULTS.md
 *   npm run bench -- --quick      under a minute; CI runs it so the harness never rots
 *
 * Options: --runs N (repetitions, median reported), --only throughput,latency,memory,grpc,
 * --source / --build (measure lib/ through tsx, or compiled by tsc as users get
 * it: the full run's default),
 * --clients <substring,...>, --profile (CPU profiles of the drainpipe and raw
 * node:http2 and undici measurement windows into bench/out/profiles), --no-write (full run without
 * rewriting RESULTS.md), --results FILE.
 *
 * The server (nghttpd) runs on CPU 0; every measurement runs in its own
 * child process pinned to CPU 1 (`taskset`), so clients never share a heap
 * or a JIT, and runs are interleaved (client order rotates each run) so
 * drift on a shared machine spreads over all clients. Exits 0 whether or
 * not targets are met; exits 1 only when a measurement could not be made
 * (a client crashed, hung or failed requests), so CI notices a broken harness
 * or a broken client.
 */
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {
  CLIENTS,
  RAW,
  RESULT_MARKER,
  SCENARIO_TITLES,
  THROUGHPUT_SCENARIOS,
  UNDICI,
  median,
  type ClientName,
  type IdleOriginsResult,
  type LatencyResult,
  type RecyclesResult,
  type Result,
  type Target,
  type Task,
  type ThroughputResult,
  type ThroughputScenario,
} from './common.js'
import { h2load, h2loadVersion } from './h2load.js'
import { grpcBench, type GrpcBenchReport } from './scenarios/grpc.js'
import { startMeter } from './interference.js'
import { pinned, repoRoot, startServer } from './nghttpd.js'
import {
  NOTES_END,
  NOTES_START,
  existingNotes,
  formatBytes,
  formatMicros,
  formatNumber,
  formatRatio,
  markdownTable,
  terminalTable,
  type Table,
} from './report.js'

// ── Options ──────────────────────────────────────────────────────────────

const argv = process.argv.slice(2)
const flag = (name: string) => argv.includes(name)
const option = (name: string): string | undefined => {
  const index = argv.indexOf(name)
  if (index !== -1) return argv[index + 1]
  const inline = argv.find((arg) => arg.startsWith(`${name}=`))
  return inline?.slice(name.length + 1)
}
const quick = flag('--quick')
/** Measure lib/ as built by tsc (what users run) or through tsx (faster to start; quick's default). */
const useBuild = flag('--build') || (!quick && !flag('--source'))
const profile = flag('--profile')
const only = new Set((option('--only') ?? 'throughput,latency,memory,grpc').split(','))
const clientFilter = option('--clients')?.split(',')
const resultsFile = path.resolve(option('--results') ?? path.join(repoRoot, 'bench', 'RESULTS.md'))
const write = !quick && !flag('--no-write')

const SERVER_CPU = 0
const CLIENT_CPU = 1

const plan = quick
  ? {
      runs: Number(option('--runs') ?? 1),
      small: { warmupMs: 200, durationMs: 400 },
      large: { warmupMs: 100, durationMs: 400 },
      h2loadScenarios: ['get'] as ThroughputScenario[],
      latency: { rate: 2000, warmupMs: 2200, durationMs: 1500, recycleMs: 1000, references: false },
      recycles: { recycles: 100, warmupRecycles: 20, ageMs: 1, trickle: 2, reference: 0 },
      idleOrigins: { origins: 100, clients: ['drainpipe'] as const },
    }
  : {
      runs: Number(option('--runs') ?? 3),
      small: { warmupMs: 750, durationMs: 1500 },
      large: { warmupMs: 300, durationMs: 1500 },
      h2loadScenarios: [...THROUGHPUT_SCENARIOS],
      latency: { rate: 2000, warmupMs: 2500, durationMs: 6000, recycleMs: 1000, references: true },
      recycles: { recycles: 10_000, warmupRecycles: 200, ageMs: 1, trickle: 2, reference: 1_000 },
      idleOrigins: { origins: 1000, clients: ['drainpipe', 'undici Agent H2', 'node:http2 (raw)'] as const },
    }

const clients = CLIENTS.filter((name) => !clientFilter || clientFilter.some((part) => name.includes(part)))
const isDrainpipe = (name: string) => name.includes('drainpipe')

// ── Children ─────────────────────────────────────────────────────────────

const failures: string[] = []
let profileCount = 0

function estimateMs(task: Task): number {
  switch (task.kind) {
    case 'throughput':
    case 'latency':
      return task.warmupMs + task.durationMs
    case 'recycles':
      return (task.recycles + task.warmupRecycles) * 20
    case 'idle-origins':
      return task.origins * 30
  }
}

function label(task: Task): string {
  switch (task.kind) {
    case 'throughput':
      return `${task.scenario} ${task.client}`
    case 'latency':
      return `latency ${task.client}${task.recycleMs ? ` recycle ${task.recycleMs} ms` : ''}`
    case 'recycles':
      return task.client === 'drainpipe' ? `${task.recycles} recycles` : `${task.recycles} ${task.client} connect-request-close cycles`
    case 'idle-origins':
      return `${task.origins} idle origins ${task.client}`
  }
}

/** Cores' worth of CPU other processes used during each measurement kept. */
const interference: number[] = []
let repeated = 0
const DISTURBED = 0.3
const RETRIES = quick ? 0 : 1
/**
 * Repeats allowed per section (so a machine that is busy all along does not
 * double the run time, and the throughput section cannot use up the
 * latency section's share).
 */
const retryBudgets = { throughput: 12, latency: 4, memory: 2 }
let retryBudget = 0
const section = (name: keyof typeof retryBudgets) => {
  retryBudget = quick ? 0 : retryBudgets[name]
}

/**
 * Runs tasks in a fresh child pinned to the client core. On a shared
 * machine a measurement during which other processes took more than
 * DISTURBED cores is repeated (full mode, once, while the run's budget of
 * repeats lasts) and the least disturbed attempt is kept.
 */
async function measure(target: Target, tasks: Task[]): Promise<Result[]> {
  let best: { results: Result[]; foreign: number } | undefined
  const profileDir = path.join(repoRoot, 'bench', 'out', 'profiles')
  if (profile) {
    tasks = tasks.map((task) =>
      (task.kind === 'throughput' || task.kind === 'latency') && (isDrainpipe(task.client) || task.client === RAW || task.client === UNDICI)
        ? { ...task, profileDir: path.join(profileDir, String(++profileCount).padStart(3, '0')) }
        : task,
    )
  }
  for (let attempt = 0; attempt <= RETRIES; attempt++) {
    const meter = startMeter(serverPid)
    const { results, cpuMs, ok } = await measureOnce(target, tasks)
    const { foreignCores } = meter.stop(cpuMs)
    if (!ok) return results
    if (best === undefined || foreignCores < best.foreign) best = { results, foreign: foreignCores }
    if (foreignCores <= DISTURBED || attempt === RETRIES || retryBudget <= 0 || profile) break
    retryBudget--
    repeated++
    progress(`  (others used ${foreignCores.toFixed(2)} cores; measuring again)`)
  }
  interference.push(best!.foreign)
  if (profile) {
    for (const result of best!.results) {
      const task = tasks.find((t) => t.kind === result.kind && 'client' in t && 'client' in result && t.client === result.client)
      if (task && 'profileDir' in task && task.profileDir && (result.kind === 'throughput' || result.kind === 'latency')) {
        const count = result.kind === 'throughput' ? result.completed : result.count
        progress(`profile: ${path.relative(repoRoot, task.profileDir)}/ (${label(task)}: ${count} requests in the window)\n`)
      }
    }
  }
  return best!.results
}

async function measureOnce(target: Target, tasks: Task[]): Promise<{ results: Result[]; cpuMs: number; ok: boolean }> {
  const nodeFlags: string[] = []
  if (tasks.some((task) => task.kind === 'recycles' || task.kind === 'idle-origins')) nodeFlags.push('--expose-gc')
  const entry = builtWorker ? [builtWorker] : ['--import', 'tsx', path.join(repoRoot, 'bench', 'worker.ts')]
  const [command, args] = pinned(CLIENT_CPU, process.execPath, [...nodeFlags, ...entry, JSON.stringify({ target, tasks })])
  const timeoutMs = tasks.reduce((sum, task) => sum + estimateMs(task), 0) + 60_000
  const what = tasks.map(label).join(', ')
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] })
    let stdout = ''
    let timedOut = false
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    const timer = setTimeout(() => {
      timedOut = true
      failures.push(`${what}: no result within ${timeoutMs} ms (hang?); killed`)
      child.kill('SIGKILL')
    }, timeoutMs)
    child.on('close', (code) => {
      clearTimeout(timer)
      const line = stdout.split('\n').find((text) => text.startsWith(RESULT_MARKER))
      const { results, cpuMs } = line
        ? (JSON.parse(line.slice(RESULT_MARKER.length)) as { results: Result[]; cpuMs: number })
        : { results: [], cpuMs: 0 }
      let ok = code === 0 && !timedOut
      if (code !== 0 && !timedOut) failures.push(`${what}: the child exited with ${code}`)
      for (const result of results) {
        if ('errors' in result && result.errors > 0) {
          ok = false
          failures.push(`${label(tasks.find((task) => task.kind === result.kind)!)}: ${result.errors} failed requests; first: ${result.firstError}`)
        }
      }
      resolve({ results, cpuMs, ok })
    })
  })
}

function progress(text: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${text}`)
  else process.stderr.write(`${text}\n`)
}

// ── The run ──────────────────────────────────────────────────────────────

const started = Date.now()
const loadBefore = os.loadavg()[0]!

const git = (args: string[]) => {
  try {
    return execFileSync('git', args, { cwd: repoRoot, encoding: 'utf8' }).trim()
  } catch {
    return '?'
  }
}
// The lib/ measured is the one compiled (or loaded) now: record its commit now, not at the end.
const libCommit = git(['log', '-1', '--format=%h', '--', 'lib'])
const headCommit = git(['rev-parse', '--short', 'HEAD'])
const libDirty = git(['status', '--porcelain', '--', 'lib']) !== ''

/**
 * Compiles the measuring child and lib/ with the project's compiler options
 * (bench/tsconfig.build.json → bench/out/build): the full run measures the
 * JavaScript users get (tsx's on-the-fly transform adds `__name()` calls to
 * closures) and children start without tsx. Undefined when that failed.
 */
function buildWorker(): string | undefined {
  const outDir = path.join(repoRoot, 'bench', 'out', 'build')
  rmSync(outDir, { recursive: true, force: true })
  progress('compiling bench/worker.ts and lib/ with tsc')
  try {
    execFileSync(process.execPath, [path.join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join('bench', 'tsconfig.build.json')], {
      cwd: repoRoot,
      stdio: 'pipe',
    })
  } catch (error) {
    // tsc still emits on type errors (someone may be mid-change in lib/); only a missing output is fatal.
    console.warn(`!! tsc reported errors:\n${String((error as { stdout?: Buffer }).stdout ?? error).slice(0, 2000)}`)
  }
  const entry = path.join(outDir, 'bench', 'worker.js')
  if (!existsSync(entry)) {
    console.warn('!! no build output; running the children through tsx instead')
    return undefined
  }
  return entry
}
const builtWorker = useBuild ? buildWorker() : undefined

if (os.availableParallelism() < 2) console.warn('!! fewer than 2 CPUs: server and client share a core; figures are not meaningful')
const server = await startServer(SERVER_CPU)
const { target } = server
const serverPid = server.pid
const h2loadDescription = h2loadVersion()

const throughput = new Map<ThroughputScenario, Map<string, ThroughputResult[]>>()
const native = new Map<ThroughputScenario, number[]>()
const latency: LatencyResult[] = []
let recycleResult: RecyclesResult | undefined
let recycleReference: RecyclesResult | undefined
const idle: IdleOriginsResult[] = []

function keep(result: Result): void {
  switch (result.kind) {
    case 'throughput': {
      let byClient = throughput.get(result.scenario)
      if (!byClient) throughput.set(result.scenario, (byClient = new Map()))
      const list = byClient.get(result.client) ?? []
      list.push(result)
      byClient.set(result.client, list)
      return
    }
    case 'latency':
      latency.push(result)
      return
    case 'recycles':
      if (result.client === 'drainpipe') recycleResult = result
      else recycleReference = result
      return
    case 'idle-origins':
      idle.push(result)
  }
}

const rotate = <T>(list: readonly T[], by: number): T[] => list.map((_, i) => list[(i + by) % list.length]!)
let grpcReport: GrpcBenchReport | undefined

try {
  if (only.has('throughput')) {
    section('throughput')
    const timing = (scenario: ThroughputScenario) => (scenario === 'upload' || scenario === 'download' ? plan.large : plan.small)
    const task = (client: ClientName, scenario: ThroughputScenario): Task => ({
      kind: 'throughput',
      client,
      scenario,
      concurrency: scenario === 'get' || scenario === 'post' ? 100 : 1,
      ...timing(scenario),
    })
    for (let run = 0; run < plan.runs; run++) {
      for (const scenario of plan.h2loadScenarios) {
        progress(`run ${run + 1}/${plan.runs}: h2load ${scenario}`)
        const { warmupMs, durationMs } = timing(scenario)
        try {
          const result = await h2load(scenario, target.origin, server.docroot, warmupMs, durationMs, CLIENT_CPU)
          if (result) native.set(scenario, [...(native.get(scenario) ?? []), result.value])
          if (result?.failed) failures.push(`h2load ${scenario}: ${result.failed} failed requests`)
        } catch (error) {
          failures.push((error as Error).message)
        }
      }
      if (quick) {
        // One child per client for all four scenarios: the harness is exercised in well under a minute.
        for (const client of rotate(clients, run)) {
          progress(`run ${run + 1}/${plan.runs}: ${client}`)
          for (const result of await measure(target, THROUGHPUT_SCENARIOS.map((scenario) => task(client, scenario)))) keep(result)
        }
      } else {
        for (const scenario of THROUGHPUT_SCENARIOS) {
          for (const client of rotate(clients, run)) {
            progress(`run ${run + 1}/${plan.runs}: ${scenario} ${client}`)
            for (const result of await measure(target, [task(client, scenario)])) keep(result)
          }
        }
      }
    }
  }

  if (only.has('latency')) {
    section('latency')
    const { rate, warmupMs, durationMs, recycleMs } = plan.latency
    const configs: { client: ClientName; recycleMs: number | undefined; runs: number }[] = [
      { client: 'drainpipe request()', recycleMs: undefined, runs: plan.runs },
      { client: 'drainpipe request()', recycleMs, runs: plan.runs },
    ]
    if (plan.latency.references) {
      configs.push({ client: RAW, recycleMs: undefined, runs: 1 }, { client: UNDICI, recycleMs: undefined, runs: 1 })
    }
    for (let run = 0; run < plan.runs; run++) {
      for (const config of rotate(configs, run)) {
        if (run >= config.runs) continue
        const task: Task = { kind: 'latency', client: config.client, recycleMs: config.recycleMs, rate, warmupMs, durationMs }
        progress(`run ${run + 1}/${plan.runs}: ${label(task)}`)
        for (const result of await measure(target, [task])) keep(result)
      }
    }
  }

  if (only.has('memory')) {
    section('memory')
    const { recycles, warmupRecycles, ageMs, trickle, reference } = plan.recycles
    const recycleTasks: Task[] = [{ kind: 'recycles', client: 'drainpipe', recycles, warmupRecycles, ageMs, trickle }]
    if (reference > 0) recycleTasks.push({ kind: 'recycles', client: 'node:http2 (raw)', recycles: reference, warmupRecycles, ageMs: 0, trickle: 1 })
    for (const task of recycleTasks) {
      progress(label(task))
      for (const result of await measure(target, [task])) keep(result)
    }
    for (const client of plan.idleOrigins.clients) {
      const idleTask: Task = { kind: 'idle-origins', client, origins: plan.idleOrigins.origins }
      progress(label(idleTask))
      for (const result of await measure(target, [idleTask])) keep(result)
    }
  }

  if (only.has('grpc')) {
    const buildDir = builtWorker ? path.join(repoRoot, 'bench', 'out', 'build') : undefined
    const profileDir = profile ? path.join(repoRoot, 'bench', 'out', 'profiles', 'grpc') : undefined
    grpcReport = await grpcBench({ quick, runs: plan.runs, repoRoot, buildDir, pinned, progress, serverCpu: SERVER_CPU, clientCpu: CLIENT_CPU, profileDir })
    failures.push(...grpcReport.failures)
  }
} finally {
  progress('')
  await server.stop()
}
const loadAfter = os.loadavg()[0]!
const elapsedS = (Date.now() - started) / 1000

// ── Figures ──────────────────────────────────────────────────────────────

const medianOf = (scenario: ThroughputScenario, client: string): number | undefined => {
  const list = throughput.get(scenario)?.get(client)
  return list?.length ? median(list.map((result) => result.value)) : undefined
}
const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || b === 0 ? undefined : a / b)

const tables: Table[] = []
for (const scenario of THROUGHPUT_SCENARIOS) {
  if (!throughput.has(scenario) && !native.has(scenario)) continue
  const raw = medianOf(scenario, RAW)
  const undici = medianOf(scenario, UNDICI)
  const digits = scenario === 'upload' || scenario === 'download' ? 1 : 0
  const rows: string[][] = []
  const nativeRuns = native.get(scenario)
  if (nativeRuns?.length) {
    const value = median(nativeRuns)
    rows.push(['h2load (native limit)', formatNumber(value, digits), formatRatio(ratio(value, raw)), formatRatio(ratio(value, undici)), spread(nativeRuns), '—', '1'])
  }
  for (const client of clients) {
    const list = throughput.get(scenario)?.get(client)
    if (!list?.length) {
      rows.push([client, 'failed', '—', '—', '—', '—', '—'])
      continue
    }
    const value = median(list.map((result) => result.value))
    const connections = [...new Set(list.map((result) => result.connections))].join('/')
    const cpu = median(list.map((result) => result.cpuUsPerOp))
    const cpuText = scenario === 'upload' || scenario === 'download' ? `${formatNumber(cpu / 1000, 1)} ms` : `${formatNumber(cpu)} µs`
    rows.push([client, formatNumber(value, digits), formatRatio(ratio(value, raw)), formatRatio(ratio(value, undici)), spread(list.map((r) => r.value)), cpuText, connections])
  }
  tables.push({
    title: SCENARIO_TITLES[scenario],
    head: ['client', 'median', '× raw h2', '× undici', 'spread', 'CPU/req', 'conns'],
    right: [1, 2, 3, 4, 5, 6],
    rows,
  })
}

function spread(values: number[]): string {
  if (values.length < 2) return '—'
  const mid = median(values)
  return `±${(((Math.max(...values) - Math.min(...values)) / 2 / mid) * 100).toFixed(0)}%`
}

const latencyGroups = new Map<string, LatencyResult[]>()
for (const result of latency) {
  const key = `${result.client}${result.recycleMs ? `, recycle every ${result.recycleMs} ms` : ''}`
  latencyGroups.set(key, [...(latencyGroups.get(key) ?? []), result])
}
const latencyMedian = (key: string, field: 'p50' | 'p99' | 'p999' | 'max') => {
  const list = latencyGroups.get(key)
  return list?.length ? median(list.map((result) => result[field])) : undefined
}
const dpKey = 'drainpipe request()'
const dpRecycleKey = `drainpipe request(), recycle every ${plan.latency.recycleMs} ms`
if (latencyGroups.size > 0) {
  const rawP99 = latencyMedian(RAW, 'p99')
  const undiciP99 = latencyMedian(UNDICI, 'p99')
  const splits = (latencyGroups.get(dpRecycleKey) ?? []).filter((result) => result.duringRecycle && result.outsideRecycle)
  const splitNote = splits.length
    ? [
        `Within the recycling runs (same process, same moment, so the same load from the rest of the machine): ${formatNumber(median(splits.map((r) => r.duringRecycle!.count)))} requests per run were in flight while a recycle was under way (successor connecting → predecessor closed): p50 ${formatMicros(median(splits.map((r) => r.duringRecycle!.p50)))}, p99 ${formatMicros(median(splits.map((r) => r.duringRecycle!.p99)))}, max ${formatMicros(median(splits.map((r) => r.duringRecycle!.max)))}; the other ${formatNumber(median(splits.map((r) => r.outsideRecycle!.count)))}: p50 ${formatMicros(median(splits.map((r) => r.outsideRecycle!.p50)))}, p99 ${formatMicros(median(splits.map((r) => r.outsideRecycle!.p99)))}, max ${formatMicros(median(splits.map((r) => r.outsideRecycle!.max)))} (medians of runs).`,
      ]
    : []
  tables.push({
    title: `Latency at ${formatNumber(plan.latency.rate)} req/s, small GET (from the intended send time; median of runs)`,
    head: ['client', 'p50', 'p99', 'p99.9', 'max', 'p99 × raw', 'p99 × undici', 'recycles', 'runs'],
    right: [1, 2, 3, 4, 5, 6, 7, 8],
    rows: [...latencyGroups.entries()].map(([key, list]) => [
      key,
      formatMicros(latencyMedian(key, 'p50')),
      formatMicros(latencyMedian(key, 'p99')),
      formatMicros(latencyMedian(key, 'p999')),
      formatMicros(latencyMedian(key, 'max')),
      formatRatio(ratio(latencyMedian(key, 'p99'), rawP99)),
      formatRatio(ratio(latencyMedian(key, 'p99'), undiciP99)),
      String(median(list.map((result) => result.recycles))),
      String(list.length),
    ]),
    notes: [
      `p99 of each run: ${[...latencyGroups.entries()].map(([key, list]) => `${key}: ${list.map((r) => formatMicros(r.p99)).join(', ')}`).join('; ')}`,
      ...splitNote,
    ],
  })
}

const memoryRows: string[][] = []
const per1000 = (bytes: number, count: number) => (count > 0 ? (bytes * 1000) / count : undefined)
for (const r of [recycleResult, recycleReference]) {
  if (!r) continue
  const heap = r.heapAfter - r.heapBefore
  const rss = r.rssAfter - r.rssBefore
  memoryRows.push([
    r.client === 'drainpipe'
      ? `drainpipe, ${formatNumber(r.recycles)} recycles (age ${plan.recycles.ageMs} ms, ${plan.recycles.trickle} requests in flight)`
      : `node:http2 (raw), ${formatNumber(r.recycles)} connect → request → close cycles (reference)`,
    formatBytes(heap),
    formatBytes(rss),
    `${formatBytes(per1000(heap, r.recycles))} heap / ${formatBytes(per1000(rss, r.recycles))} RSS per 1,000; ${formatNumber((r.recycles * 1000) / r.elapsedMs)}/s; ${formatNumber(r.requests)} requests${r.client === 'drainpipe' ? `, ${r.failed} failed recycles` : ''}`,
  ])
}
const idleRaw = idle.find((result) => result.client === 'node:http2 (raw)')
const idleUndici = idle.find((result) => result.client === 'undici Agent H2')
const perOrigin = (result: IdleOriginsResult | undefined, field: 'heap' | 'rss') =>
  result === undefined ? undefined : field === 'heap' ? (result.heapAfter - result.heapBefore) / result.origins : (result.rssAfter - result.rssBefore) / result.origins
for (const result of idle) {
  const heap = perOrigin(result, 'heap')
  const rss = perOrigin(result, 'rss')
  memoryRows.push([
    `${result.client}, ${formatNumber(result.origins)} idle origins (per origin)`,
    formatBytes(heap),
    formatBytes(rss),
    `heap ${formatRatio(ratio(heap, perOrigin(idleRaw, 'heap')))} raw, ${formatRatio(ratio(heap, perOrigin(idleUndici, 'heap')))} undici; ${result.connections} connections open`,
  ])
}
if (memoryRows.length) {
  tables.push({ title: 'Memory (after forced GC)', head: ['case', 'heap growth', 'RSS growth', 'notes'], right: [1, 2], rows: memoryRows })
}
if (grpcReport) tables.push(...grpcReport.tables)

// ── Targets ──────────────────────────────────────────────────────────────

interface Check {
  name: string
  value: number | undefined
  limit: number
  /** 'min': value must be ≥ limit; 'max': value must be ≤ (or <) limit. */
  kind: 'min' | 'max'
  show: (value: number | undefined) => string
  /** The same comparison on CPU time per request (reference CPU / drainpipe CPU), which a busy machine disturbs far less. */
  cpuBasis?: number | undefined
  note?: string
}
const cpuOf = (scenario: ThroughputScenario, client: string): number | undefined => {
  const list = throughput.get(scenario)?.get(client)
  return list?.length ? median(list.map((result) => result.cpuUsPerOp)) : undefined
}
/** How many times cheaper in CPU `client` is than `reference` (> 1: cheaper). */
const cpuRatio = (scenario: ThroughputScenario, client: string, reference: string) => ratio(cpuOf(scenario, reference), cpuOf(scenario, client))
const checks: Check[] = []
for (const scenario of ['get', 'post'] as const) {
  const title = scenario === 'get' ? 'small GET' : 'small POST'
  const dp = medianOf(scenario, 'drainpipe request()')
  checks.push(
    {
      name: `request() ${title} ≥ 0.9× raw node:http2`,
      value: ratio(dp, medianOf(scenario, RAW)),
      limit: 0.9,
      kind: 'min',
      show: formatRatio,
      cpuBasis: cpuRatio(scenario, 'drainpipe request()', RAW),
    },
    {
      name: `request() ${title} ≥ 1.5× undici Client H2`,
      value: ratio(dp, medianOf(scenario, UNDICI)),
      limit: 1.5,
      kind: 'min',
      show: formatRatio,
      cpuBasis: cpuRatio(scenario, 'drainpipe request()', UNDICI),
    },
    {
      name: `fetch() ${title} ≥ 1.0× undici.fetch H2`,
      value: ratio(medianOf(scenario, 'drainpipe fetch()'), medianOf(scenario, 'undici.fetch H2')),
      limit: 1.0,
      kind: 'min',
      show: formatRatio,
      cpuBasis: cpuRatio(scenario, 'drainpipe fetch()', 'undici.fetch H2'),
    },
  )
}
for (const scenario of ['upload', 'download'] as const) {
  checks.push({
    name: `request() 10 MiB ${scenario} ≥ 1.0× raw node:http2`,
    value: ratio(medianOf(scenario, 'drainpipe request()'), medianOf(scenario, RAW)),
    limit: 1.0,
    kind: 'min',
    show: formatRatio,
    cpuBasis: cpuRatio(scenario, 'drainpipe request()', RAW),
  })
}
checks.push({
  name: `p99 with a recycle every ${plan.latency.recycleMs} ms ≤ 1.2× p99 without`,
  value: ratio(latencyMedian(dpRecycleKey, 'p99'), latencyMedian(dpKey, 'p99')),
  limit: 1.2,
  kind: 'max',
  show: formatRatio,
})
checks.push({
  name: 'heap growth after 10,000 recycles < 1 MB',
  value: recycleResult ? recycleResult.heapAfter - recycleResult.heapBefore : undefined,
  limit: 1_000_000,
  kind: 'max',
  show: formatBytes,
  ...(recycleResult && recycleResult.recycles < 10_000 ? { note: `only ${recycleResult.recycles} recycles in this run` } : {}),
})
checks.push(...(grpcReport?.checks ?? []))
const passes = (check: Check, value: number | undefined) =>
  value === undefined ? undefined : check.kind === 'min' ? value >= check.limit : value < check.limit
const verdict = (check: Check) => {
  const result = passes(check, check.value)
  return result === undefined ? 'n/a' : result ? 'pass' : 'MISS'
}
tables.push({
  title: 'Targets',
  head: ['target', 'measured', 'result', 'on CPU/req'],
  right: [1],
  rows: checks.map((check) => {
    const cpu = check.cpuBasis === undefined ? '—' : `${formatRatio(check.cpuBasis)} ${passes(check, check.cpuBasis) ? 'pass' : 'MISS'}`
    return [check.note ? `${check.name} (${check.note})` : check.name, check.show(check.value), verdict(check), cpu]
  }),
  notes: [
    '"measured" compares rates (what the targets say); "on CPU/req" makes the same comparison with CPU time per request (reference ÷ drainpipe), which depends far less on what else the machine was doing.',
  ],
})

// ── Output ───────────────────────────────────────────────────────────────

const version = (name: string) => {
  try {
    return (JSON.parse(readFileSync(path.join(repoRoot, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version
  } catch {
    return '?'
  }
}
const cpus = os.cpus()
const environment = [
  `- Date: ${new Date().toISOString()}`,
  `- Machine: ${cpus[0]?.model ?? '?'} × ${cpus.length} (${os.availableParallelism()} usable), ${formatBytes(os.totalmem())} RAM, ${os.type()} ${os.release()} ${os.arch()}`,
  `- Node ${process.version}; undici ${version('undici')}, got ${version('got')}, http2-wrapper ${version('http2-wrapper')}, hdr-histogram-js ${version('hdr-histogram-js')}`,
  `- drainpipe at ${headCommit} (last change to lib/: ${libCommit})${libDirty ? ' with uncommitted changes in lib/' : ''}, ${builtWorker ? 'lib/ compiled by tsc with the project\'s options, as published' : 'lib/ loaded through tsx'}`,
  `- Server: ${server.description}; native client: ${h2loadDescription ?? 'h2load not installed'}, pinned to CPU ${CLIENT_CPU}`,
  `- Mode: ${quick ? 'quick' : 'full'}, ${plan.runs} run(s) per figure, median reported; small requests ${plan.small.warmupMs} ms warm-up + ${plan.small.durationMs} ms measured, 10 MiB ${plan.large.warmupMs} + ${plan.large.durationMs} ms, latency ${plan.latency.warmupMs} + ${plan.latency.durationMs} ms`,
  `- Load average (1 min): ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after; other processes used a median of ${median(interference).toFixed(2)} cores (max ${Math.max(0, ...interference).toFixed(2)}) during the measurements kept${repeated ? `; ${repeated} measurement(s) were repeated because others used more than ${DISTURBED} cores` : ''}${median(interference) > 0.15 ? ' — the machine was busy with other work; expect noise' : ''}; took ${elapsedS.toFixed(0)} s`,
]

console.log(`\ndrainpipe benchmarks (${quick ? 'quick' : 'full'})`)
console.log(environment.join('\n'))
for (const table of tables) console.log(`\n${terminalTable(table)}`)
if (failures.length) {
  console.log('\nMeasurements that failed:')
  for (const failure of failures) console.log(`  - ${failure}`)
}

if (write) {
  const notes = existingNotes(resultsFile) ?? '_No analysis recorded yet._'
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
    'Ratios: each figure divided by the same figure of raw `node:http2` (one session, the lower bound of overhead) and of undici 7 `Client` with `allowH2` (pipelining 100). Higher is better for throughput, lower for latency. "spread" is half the range of the runs around the median; "CPU/req" the client process\'s CPU time per request or transfer (user + system, all threads, GC included; it depends much less than the rate on how busy the machine was); "conns" the TCP connections the client had open at the end of a run.',
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
  writeFileSync(resultsFile, markdown)
  console.log(`\nwrote ${path.relative(process.cwd(), resultsFile)}`)
}
console.log(`\ndone in ${elapsedS.toFixed(0)} s`)
process.exit(failures.length ? 1 : 0)

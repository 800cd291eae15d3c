/**
 * drainpipe benchmarks.
 *
 *   npm run bench                 full run (several minutes), rewrites bench/RESULTS.md
 *   npm run bench -- --quick      about a minute; CI runs it so the harness never rots
 *
 * plan.ts turns the options into steps; this file runs them: the server
 * (nghttpd) on CPU 0, every measurement in its own child process pinned to
 * CPU 1 (`taskset`), so clients never share a heap or a JIT; a measurement
 * that other processes disturbed is repeated. report.ts and targets.ts make
 * the tables. Exits 0 whether or not targets are met; exits 1 only when a
 * measurement could not be made (a client crashed, hung or failed requests),
 * so CI notices a broken harness or a broken client.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { runChild } from './child.js'
import type { Result, Task } from './common.js'
import { environment, sourceState } from './environment.js'
import { h2load, h2loadVersion } from './h2load.js'
import { startMeter } from './interference.js'
import { pinned, repoRoot, startServer } from './nghttpd.js'
import { describe, makePlan, type Section } from './plan.js'
import { figureTables, printReport, writeResults } from './report.js'
import { Measurements } from './results.js'
import { grpcBench, type GrpcBenchReport } from './scenarios/grpc.js'
import { checks, targetsTable } from './targets.js'

const SERVER_CPU = 0
const CLIENT_CPU = 1
/** Cores' worth of CPU other processes may use during a measurement before it is measured again. */
const DISTURBED = 0.3

const plan = makePlan(process.argv.slice(2))
const started = Date.now()
const loadBefore = os.loadavg()[0]!
const source = sourceState()

const failures: string[] = []
/** Cores' worth of CPU other processes used during each measurement kept. */
const interference: number[] = []
let repeated = 0

function progress(text: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${text}`)
  else process.stderr.write(`${text}\n`)
}

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
const builtWorker = plan.build ? buildWorker() : undefined

if (os.availableParallelism() < 2) console.warn('!! fewer than 2 CPUs: server and client share a core; figures are not meaningful')
const server = await startServer(SERVER_CPU)
const { target } = server

/** How long a child may take before it is presumed hung. */
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

/**
 * Runs tasks in a fresh child pinned to the client core. On a shared
 * machine a measurement during which other processes took more than
 * DISTURBED cores is repeated (full mode, while the section's budget of
 * repeats lasts) and the least disturbed attempt is kept.
 */
async function measure(tasks: Task[], budget: { left: number }): Promise<Result[]> {
  let best: { results: Result[]; foreign: number } | undefined
  const what = tasks.map(describe).join(', ')
  for (let attempt = 0; attempt <= plan.retries; attempt++) {
    const meter = startMeter(server.pid)
    const run = await runChild({
      target,
      tasks,
      built: builtWorker,
      cpu: CLIENT_CPU,
      timeoutMs: tasks.reduce((sum, task) => sum + estimateMs(task), 0) + 60_000,
      cwd: repoRoot,
    })
    const { foreignCores } = meter.stop(run.cpuMs)
    const failedRequests = run.results.filter((result) => result.errors > 0)
    for (const result of failedRequests) {
      const task = tasks.find((t) => t.kind === result.kind && t.client === result.client && t.engine === result.engine)
      failures.push(`${task ? describe(task) : what}: ${result.errors} failed requests; first: ${result.firstError}`)
    }
    if (run.failure) failures.push(`${what}: ${run.failure}`)
    if (run.failure || failedRequests.length) return run.results
    if (best === undefined || foreignCores < best.foreign) best = { results: run.results, foreign: foreignCores }
    // A profiled measurement is not repeated: its profile would be overwritten by a less comparable one.
    if (foreignCores <= DISTURBED || attempt === plan.retries || budget.left <= 0 || plan.profile) break
    budget.left--
    repeated++
    progress(`  (others used ${foreignCores.toFixed(2)} cores; measuring again)`)
  }
  interference.push(best!.foreign)
  for (const task of tasks) {
    if ('profileDir' in task && task.profileDir) {
      const result = best!.results.find((r) => r.kind === task.kind && r.client === task.client && r.engine === task.engine)
      const count = result?.kind === 'throughput' ? result.completed : result?.kind === 'latency' ? result.count : 0
      progress(`profile: ${path.relative(repoRoot, task.profileDir)}/ (${describe(task)}: ${count} requests in the window)\n`)
    }
  }
  return best!.results
}

async function runSection(section: Section, measured: Measurements): Promise<void> {
  const budget = { left: plan.retries > 0 ? section.retryBudget : 0 }
  for (const step of section.steps) {
    progress(step.title)
    if (step.kind === 'child') {
      for (const result of await measure(step.tasks, budget)) measured.add(result)
      continue
    }
    try {
      const result = await h2load(step.scenario, target.origin, server.docroot, step.warmupMs, step.durationMs, CLIENT_CPU)
      if (result) measured.addNative(step.scenario, result.value)
      if (result?.failed) failures.push(`h2load ${step.scenario}: ${result.failed} failed requests`)
    } catch (error) {
      failures.push((error as Error).message)
    }
  }
}

const measured = new Measurements()
let grpcReport: GrpcBenchReport | undefined
try {
  for (const section of plan.sections) await runSection(section, measured)
  if (plan.grpc) {
    grpcReport = await grpcBench(plan.grpc, {
      repoRoot,
      buildDir: builtWorker ? path.join(repoRoot, 'bench', 'out', 'build') : undefined,
      pinned,
      progress,
      serverCpu: SERVER_CPU,
      clientCpu: CLIENT_CPU,
    })
    failures.push(...grpcReport.failures)
  }
} finally {
  progress('')
  await server.stop()
}

const environmentLines = environment(plan, {
  source,
  built: builtWorker !== undefined,
  server: server.description,
  h2load: h2loadVersion(),
  clientCpu: CLIENT_CPU,
  loadBefore,
  loadAfter: os.loadavg()[0]!,
  interference,
  repeated,
  disturbed: DISTURBED,
  elapsedS: (Date.now() - started) / 1000,
})
const tables = [...figureTables(plan, measured), ...(grpcReport?.tables ?? []), targetsTable(plan, [...checks(plan, measured), ...(grpcReport?.checks ?? [])])]
printReport(`drainpipe benchmarks (${plan.quick ? 'quick' : 'full'})`, environmentLines, tables, failures)
if (plan.resultsFile) writeResults(plan.resultsFile, environmentLines, tables, failures)
console.log(`\ndone in ${((Date.now() - started) / 1000).toFixed(0)} s`)
process.exit(failures.length ? 1 : 0)

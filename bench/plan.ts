/**
 * The command line turned into what to measure: which sections, which
 * clients on which engines, for how long, in what order and grouped into
 * which child processes. Nothing here starts a process (run.ts does).
 *
 * Options: --quick, --runs N, --only throughput,latency,memory,grpc,
 * --clients <substring,...> (of throughput row names), --engines wire,node,
 * --source / --build, --profile, --no-write, --results FILE.
 */
import path from 'node:path'
import type { EngineName } from '../lib/index.js'
import {
  CLIENTS,
  DEFAULT_ENGINE,
  ENGINES,
  RAW,
  THROUGHPUT_SCENARIOS,
  UNDICI,
  rowName,
  type ClientName,
  type Task,
  type ThroughputScenario,
} from './common.js'
import { repoRoot } from './nghttpd.js'
import type { GrpcPlan } from './scenarios/grpc.js'

export type SectionName = 'throughput' | 'latency' | 'memory'

/** One thing to do in order: an h2load run, or tasks in one fresh measuring child. */
export type Step =
  | { kind: 'h2load'; title: string; scenario: ThroughputScenario; warmupMs: number; durationMs: number }
  | { kind: 'child'; title: string; tasks: Task[] }

export interface Section {
  name: SectionName
  /**
   * Repeats of disturbed measurements this section may spend, so a machine
   * that is busy all along does not double the run time and the throughput
   * section cannot use up the latency section's share.
   */
  retryBudget: number
  steps: Step[]
}

/** A client as a table row: drainpipe's clients once per engine measured. */
export interface Row {
  client: ClientName
  engine: EngineName | undefined
  name: string
}

export interface Plan {
  quick: boolean
  /** Compile the child and lib/ with tsc (what users run) instead of loading them through tsx. */
  build: boolean
  profile: boolean
  /** RESULTS.md to rewrite; undefined: print only. */
  resultsFile: string | undefined
  runs: number
  engines: readonly EngineName[]
  /** Measurements per step: 0 in quick mode, 1 more in full mode when others disturbed the first. */
  retries: number
  small: { warmupMs: number; durationMs: number }
  large: { warmupMs: number; durationMs: number }
  latency: { rate: number; warmupMs: number; durationMs: number; recycleMs: number }
  recycles: { recycles: number; warmupRecycles: number; ageMs: number; trickle: number }
  /** Throughput rows, in table order. */
  rows: Row[]
  sections: Section[]
  grpc: GrpcPlan | undefined
}

const isDrainpipe = (client: string) => client.includes('drainpipe')

export function makePlan(argv: string[]): Plan {
  const flag = (name: string) => argv.includes(name)
  const option = (name: string): string | undefined => {
    const index = argv.indexOf(name)
    if (index !== -1) return argv[index + 1]
    return argv.find((arg) => arg.startsWith(`${name}=`))?.slice(name.length + 1)
  }
  const quick = flag('--quick')
  const only = new Set((option('--only') ?? 'throughput,latency,memory,grpc').split(','))
  const clientFilter = option('--clients')?.split(',')
  // Quick (CI) measures the default engine only: the harness has no path of
  // its own per engine (the engine is one client option) and the test suite
  // runs both engines; each engine adds a third to the quick run's time.
  const engines = (option('--engines')?.split(',') ?? (quick ? [DEFAULT_ENGINE] : [...ENGINES])) as EngineName[]
  for (const engine of engines) {
    if (!ENGINES.includes(engine)) throw new Error(`--engines: '${engine}' is not one of ${ENGINES.join(', ')}`)
  }
  const profile = flag('--profile')
  const runs = Number(option('--runs') ?? (quick ? 1 : 3))
  const timings = quick
    ? {
        // Long enough a warm-up that the JIT's tier-up no longer lands in the window, on a pinned core.
        small: { warmupMs: 1000, durationMs: 400 },
        large: { warmupMs: 300, durationMs: 400 },
        latency: { rate: 2000, warmupMs: 2200, durationMs: 1500, recycleMs: 1000 },
        recycles: { recycles: 100, warmupRecycles: 20, ageMs: 1, trickle: 2 },
      }
    : {
        small: { warmupMs: 750, durationMs: 1500 },
        large: { warmupMs: 300, durationMs: 1500 },
        latency: { rate: 2000, warmupMs: 2500, durationMs: 6000, recycleMs: 1000 },
        // 1,000 recycles of warm-up: after 200, the JIT still added ~0.5 MB of code and metadata over the next 1,000.
        recycles: { recycles: 10_000, warmupRecycles: 1_000, ageMs: 1, trickle: 2 },
      }
  const rows: Row[] = CLIENTS.flatMap((client): Row[] =>
    isDrainpipe(client) ? engines.map((engine) => ({ client, engine, name: rowName(client, engine) })) : [{ client, engine: undefined, name: client }],
  ).filter((row) => !clientFilter || clientFilter.some((part) => row.name.includes(part)))

  // --profile: a directory per profiled measurement, numbered in the order measured.
  let profiled = 0
  const profileDir = (client: string) =>
    profile && (isDrainpipe(client) || client === RAW || client === UNDICI)
      ? { profileDir: path.join(repoRoot, 'bench', 'out', 'profiles', String(++profiled).padStart(3, '0')) }
      : {}

  const sections: Section[] = []
  if (only.has('throughput')) {
    const timing = (scenario: ThroughputScenario) => (scenario === 'upload' || scenario === 'download' ? timings.large : timings.small)
    const task = (row: Row, scenario: ThroughputScenario): Task => ({
      kind: 'throughput',
      client: row.client,
      engine: row.engine,
      scenario,
      concurrency: scenario === 'get' || scenario === 'post' ? 100 : 1,
      ...timing(scenario),
      ...profileDir(row.client),
    })
    const steps: Step[] = []
    for (let run = 0; run < runs; run++) {
      const of = `run ${run + 1}/${runs}:`
      for (const scenario of quick ? (['get'] as const) : THROUGHPUT_SCENARIOS) {
        steps.push({ kind: 'h2load', title: `${of} h2load ${scenario}`, scenario, ...timing(scenario) })
      }
      if (quick) {
        // One child per row for all four scenarios: the harness is exercised in well under a minute.
        for (const row of rotate(rows, run)) {
          steps.push({ kind: 'child', title: `${of} ${row.name}`, tasks: THROUGHPUT_SCENARIOS.map((scenario) => task(row, scenario)) })
        }
      } else {
        for (const scenario of THROUGHPUT_SCENARIOS) {
          for (const row of rotate(rows, run)) steps.push({ kind: 'child', title: `${of} ${scenario} ${row.name}`, tasks: [task(row, scenario)] })
        }
      }
    }
    sections.push({ name: 'throughput', retryBudget: quick ? 0 : 12 * engines.length, steps })
  }

  if (only.has('latency')) {
    const { rate, warmupMs, durationMs, recycleMs } = timings.latency
    const configs: { client: ClientName; engine: EngineName | undefined; recycleMs: number | undefined; runs: number }[] = []
    for (const engine of engines) {
      configs.push({ client: 'drainpipe request()', engine, recycleMs: undefined, runs }, { client: 'drainpipe request()', engine, recycleMs, runs })
    }
    if (!quick) configs.push({ client: RAW, engine: undefined, recycleMs: undefined, runs: 1 }, { client: UNDICI, engine: undefined, recycleMs: undefined, runs: 1 })
    const steps: Step[] = []
    for (let run = 0; run < runs; run++) {
      for (const config of rotate(configs, run)) {
        if (run >= config.runs) continue
        const task: Task = { kind: 'latency', client: config.client, engine: config.engine, recycleMs: config.recycleMs, rate, warmupMs, durationMs, ...profileDir(config.client) }
        steps.push({ kind: 'child', title: `run ${run + 1}/${runs}: ${describe(task)}`, tasks: [task] })
      }
    }
    sections.push({ name: 'latency', retryBudget: quick ? 0 : 4 * engines.length, steps })
  }

  if (only.has('memory')) {
    const tasks: Task[] = engines.map((engine) => ({ kind: 'recycles', client: 'drainpipe', engine, ...timings.recycles }))
    // Reference: what Node itself keeps over connect → request → close cycles (1,000 of them: 10,000 would take minutes).
    if (!quick) tasks.push({ kind: 'recycles', client: 'node:http2 (raw)', recycles: 1_000, warmupRecycles: timings.recycles.warmupRecycles, ageMs: 0, trickle: 1 })
    const origins = quick ? 100 : 1000
    for (const engine of engines) tasks.push({ kind: 'idle-origins', client: 'drainpipe', engine, origins })
    if (!quick) tasks.push({ kind: 'idle-origins', client: 'undici Agent H2', origins }, { kind: 'idle-origins', client: 'node:http2 (raw)', origins })
    sections.push({ name: 'memory', retryBudget: quick ? 0 : 2 * engines.length, steps: tasks.map((task) => ({ kind: 'child', title: describe(task), tasks: [task] })) })
  }

  const grpc: GrpcPlan | undefined = only.has('grpc')
    ? {
        runs,
        engines,
        // Quick mode exercises the harness, not the figures: one child for every client saves start-ups.
        oneChild: quick,
        warmupCalls: quick ? 100 : 2_000,
        unary: { concurrency: 100, ...(quick ? { warmupMs: 200, durationMs: 300 } : { warmupMs: 1_000, durationMs: 3_000 }) },
        stream: { concurrency: 10, messages: 1_000, ...(quick ? { warmupMs: 200, durationMs: 300 } : { warmupMs: 1_000, durationMs: 3_000 }) },
        aging: { rate: 500, ...(quick ? { warmupMs: 100, durationMs: 1_000, ageMs: 300 } : { warmupMs: 1_500, durationMs: 6_000, ageMs: 1_000 }) },
        profileDir: profile ? path.join(repoRoot, 'bench', 'out', 'profiles', 'grpc') : undefined,
      }
    : undefined

  return {
    quick,
    build: flag('--build') || (!quick && !flag('--source')),
    profile,
    resultsFile: quick || flag('--no-write') ? undefined : path.resolve(option('--results') ?? path.join(repoRoot, 'bench', 'RESULTS.md')),
    runs,
    engines,
    retries: quick ? 0 : 1,
    ...timings,
    rows,
    sections,
    grpc,
  }
}

/** Each run starts the list at another place, so drift on a shared machine spreads over all clients. */
function rotate<T>(list: readonly T[], by: number): T[] {
  return list.map((_, i) => list[(i + by) % list.length]!)
}

/** A task in words, for progress lines and failures. */
export function describe(task: Task): string {
  const name = rowName(task.client, task.engine)
  switch (task.kind) {
    case 'throughput':
      return `${task.scenario} ${name}`
    case 'latency':
      return `latency ${name}${task.recycleMs ? ` recycle ${task.recycleMs} ms` : ''}`
    case 'recycles':
      return task.client === 'drainpipe' ? `${name}: ${task.recycles} recycles` : `${name}: ${task.recycles} connect-request-close cycles`
    case 'idle-origins':
      return `${name}: ${task.origins} idle origins`
  }
}

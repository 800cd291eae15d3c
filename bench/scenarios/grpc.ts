/**
 * gRPC: drainpipe/grpc against the grpc-js client and connect-node's
 * `createGrpcTransport`, all three on the same grpc-js server over h2c, with
 * the same protobuf-es messages (test/grpc/proto/echo.proto).
 *
 * - unary: closed loop, 100 calls in flight; client CPU per call;
 * - server streaming: 10 streams in flight, 1,000 small messages each;
 *   messages per client CPU-second;
 * - aging: unary calls at a fixed rate while the server ages out every
 *   connection (`grpc.max_connection_age_ms`): p50/p99 from the intended
 *   send time, and failed calls.
 *
 * A fourth row, `drainpipe dispatch (floor)`, sends the same pre-framed
 * request bytes through `client.dispatch` with a handler that only counts
 * bytes: today's HTTP/2 engine with no protocol layer at all. drainpipe/grpc
 * minus this row is what the gRPC layer (framing, status, protobuf, Connect's
 * client API) costs.
 *
 * The server runs in a child pinned to CPU 0, every client measurement in a
 * child pinned to CPU 1 (as in run.ts); client order rotates per run and the
 * median of the runs is reported. This file is also those children:
 *
 *   node bench/scenarios/grpc.ts server '<json>'   prints the ports, serves until stdin closes
 *   node bench/scenarios/grpc.ts client '<json>'   runs the tasks, prints RESULT_MARKER + JSON
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { create, fromBinary, toBinary, type DescMessage, type MessageShape } from '@bufbuild/protobuf'
import * as hdr from 'hdr-histogram-js'
import type { EngineName } from '../../lib/index.js'
import { median, ratio, RESULT_MARKER, rowName, sleep } from '../common.js'
import { formatMicros, formatNumber, formatRatio, type Table } from '../format.js'
import { startMeter } from '../interference.js'
import { profileWindow } from '../profiler.js'
import type { Check } from '../targets.js'
import { EchoRequestSchema, EchoResponseSchema, EchoService, type EchoRequest } from '../../test/grpc/gen/echo_pb.js'

export const GRPC_CLIENTS = ['grpc-js client', 'connect-node createGrpcTransport', 'drainpipe/grpc', 'drainpipe dispatch (floor)'] as const
export type GrpcClientName = (typeof GRPC_CLIENTS)[number]
const GRPC_JS = 'grpc-js client'
const CONNECT_NODE = 'connect-node createGrpcTransport'
const DRAINPIPE = 'drainpipe/grpc'
const FLOOR = 'drainpipe dispatch (floor)'

type GrpcTask = (
  | { kind: 'unary'; concurrency: number; warmupMs: number; durationMs: number }
  | { kind: 'stream'; concurrency: number; messages: number; warmupMs: number; durationMs: number }
  | { kind: 'aging'; rate: number; warmupMs: number; durationMs: number; ageMs: number }
) & {
  client: GrpcClientName
  /** drainpipe's rows: the HTTP/2 engine. */
  engine?: EngineName
  /** Unary calls (50 at a time) that warm the JIT before the task's own warm-up. */
  warmupCalls: number
  /** Write a CPU profile of the measurement window here (`--profile`). */
  profileDir?: string
}

interface GrpcResult {
  kind: GrpcTask['kind']
  client: GrpcClientName
  engine?: EngineName
  /** Calls (unary, aging) or messages (stream) completed in the window. */
  completed: number
  elapsedMs: number
  cpuUs: number
  errors: number
  firstError?: string
  p50?: number
  p99?: number
  max?: number
}

const SMALL_REQUEST = { message: 'hello, drainpipe' }

// ── The server child ─────────────────────────────────────────────────────

async function serve(ageMs: number[]): Promise<void> {
  const grpc = await import('@grpc/grpc-js')
  const codec = <T extends DescMessage>(schema: T) => ({
    serialize: (message: unknown) => Buffer.from(toBinary(schema, message as MessageShape<T>)),
    deserialize: (bytes: Buffer) => fromBinary(schema, bytes),
  })
  const input = codec(EchoRequestSchema)
  const output = codec(EchoResponseSchema)
  const method = (name: string, responseStream: boolean) => ({
    path: `/${EchoService.typeName}/${name}`,
    requestStream: false,
    responseStream,
    requestSerialize: input.serialize,
    requestDeserialize: input.deserialize,
    responseSerialize: output.serialize,
    responseDeserialize: output.deserialize,
  })
  const definition = { echo: method('Echo', false), serverStream: method('ServerStream', true) }
  const reply = create(EchoResponseSchema, { message: 'hello, drainpipe' })
  const handlers = {
    echo(call: { request: EchoRequest }, callback: (error: null, value: unknown) => void) {
      callback(null, create(EchoResponseSchema, { message: call.request.message }))
    },
    serverStream(call: { request: EchoRequest; write(message: unknown): boolean; end(): void; once(event: string, listener: () => void): void }) {
      let index = 0
      const pump = () => {
        while (index < call.request.count) {
          reply.index = index++
          if (!call.write(reply)) return call.once('drain', pump)
        }
        call.end()
      }
      pump()
    },
  }
  const ports: number[] = []
  for (const age of [0, ...ageMs]) {
    const server = new grpc.Server(age > 0 ? { 'grpc.max_connection_age_ms': age, 'grpc.max_connection_age_grace_ms': 30_000 } : {})
    server.addService(definition, handlers as never)
    ports.push(
      await new Promise<number>((resolve, reject) =>
        server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => (error ? reject(error) : resolve(port))),
      ),
    )
  }
  process.stdout.write(`${JSON.stringify(ports)}\n`)
  // The orchestrator ends the server by closing stdin (and kills it if that fails).
  process.stdin.resume()
  process.stdin.on('end', () => process.exit(0))
}

// ── The client child ─────────────────────────────────────────────────────

interface BenchCaller {
  unary(): Promise<void>
  /** One server-streaming call; resolves with the number of messages read. */
  stream(count: number, onMessage: () => void): Promise<void>
  close(): Promise<void>
}

async function makeCaller(name: GrpcClientName, engine: EngineName | undefined, baseUrl: string): Promise<BenchCaller> {
  switch (name) {
    case GRPC_JS: {
      const grpc = await import('@grpc/grpc-js')
      const client = new grpc.Client(baseUrl.replace('http://', ''), grpc.credentials.createInsecure())
      const serialize = (message: EchoRequest) => Buffer.from(toBinary(EchoRequestSchema, message))
      const deserialize = (bytes: Buffer) => fromBinary(EchoResponseSchema, bytes)
      const request = create(EchoRequestSchema, SMALL_REQUEST)
      return {
        unary: () =>
          new Promise((resolve, reject) => {
            client.makeUnaryRequest(`/${EchoService.typeName}/Echo`, serialize, deserialize, create(EchoRequestSchema, request), (error) =>
              error ? reject(error) : resolve(),
            )
          }),
        stream: (count, onMessage) =>
          new Promise((resolve, reject) => {
            const call = client.makeServerStreamRequest(
              `/${EchoService.typeName}/ServerStream`,
              serialize,
              deserialize,
              create(EchoRequestSchema, { ...SMALL_REQUEST, count }),
            )
            call.on('data', onMessage)
            call.on('error', reject)
            call.on('end', resolve)
          }),
        close: async () => client.close(),
      }
    }
    case CONNECT_NODE:
    case DRAINPIPE: {
      const { createClient } = await import('@connectrpc/connect')
      const owned = name === DRAINPIPE ? (await import('../../lib/grpc.js')).createGrpcTransport({ baseUrl, clientOptions: { engine } }) : undefined
      const transport = owned ?? (await import('@connectrpc/connect-node')).createGrpcTransport({ baseUrl })
      const echo = createClient(EchoService, transport)
      return {
        unary: async () => {
          await echo.echo(SMALL_REQUEST)
        },
        stream: async (count, onMessage) => {
          for await (const _ of echo.serverStream({ ...SMALL_REQUEST, count })) onMessage()
        },
        close: async () => owned?.close(),
      }
    }
    case FLOOR: {
      const { Client } = await import('../../lib/index.js')
      const client = new Client({ h2c: true, retryBufferSize: 256 * 1024, engine })
      const frame = (message: Uint8Array) => {
        const framed = Buffer.allocUnsafe(5 + message.length)
        framed[0] = 0
        framed.writeUInt32BE(message.length, 1)
        framed.set(message, 5)
        return framed
      }
      const headers = { 'content-type': 'application/grpc', te: 'trailers' }
      const send = (method: string, body: Buffer, onData: (chunk: Buffer) => void) =>
        new Promise<void>((resolve, reject) => {
          client.dispatch(
            { origin: baseUrl, path: `/${EchoService.typeName}/${method}`, method: 'POST', headers, body, headersTimeout: 0, bodyTimeout: 0 },
            {
              onRequestStart() {},
              onResponseStart() {},
              onResponseData: (_controller, chunk) => onData(chunk),
              onResponseEnd: (_controller, trailers) => (trailers['grpc-status'] === '0' ? resolve() : reject(new Error(`grpc-status ${String(trailers['grpc-status'])}`))),
              onResponseError: (_controller, error) => reject(error),
            },
          )
        })
      const unaryBody = frame(toBinary(EchoRequestSchema, create(EchoRequestSchema, SMALL_REQUEST)))
      const ignore = () => {}
      return {
        unary: () => send('Echo', unaryBody, ignore),
        stream: (count, onMessage) => {
          // The floor counts messages by bytes: every message of this stream has the same size.
          const body = frame(toBinary(EchoRequestSchema, create(EchoRequestSchema, { ...SMALL_REQUEST, count })))
          const size = 5 + toBinary(EchoResponseSchema, create(EchoResponseSchema, { message: SMALL_REQUEST.message, index: 1 })).length
          let bytes = 0
          return send('ServerStream', body, (chunk) => {
            bytes += chunk.length
            while (bytes >= size) {
              bytes -= size
              onMessage()
            }
          })
        },
        close: () => client.close(),
      }
    }
  }
}

const cpuNow = () => {
  const { user, system } = process.cpuUsage()
  return user + system
}

/** Closed loop: `concurrency` workers; completions and CPU counted over a window after a warm-up. */
async function closedLoop(task: Extract<GrpcTask, { kind: 'unary' | 'stream' }>, caller: BenchCaller): Promise<GrpcResult> {
  let completed = 0
  let errors = 0
  let firstError: string | undefined
  let stop = false
  const count = () => completed++
  const worker = async () => {
    while (!stop) {
      try {
        if (task.kind === 'unary') {
          await caller.unary()
          completed++
        } else {
          await caller.stream(task.messages, count)
        }
      } catch (error) {
        errors++
        firstError ??= String((error as Error)?.stack ?? error)
      }
    }
  }
  const workers = Array.from({ length: task.concurrency }, worker)
  await sleep(task.warmupMs)
  const profile = await profileWindow(task.profileDir, `grpc ${task.kind} ${rowName(task.client, task.engine)}`)
  const startCompleted = completed
  const startCpu = cpuNow()
  const start = performance.now()
  await sleep(task.durationMs)
  const done = completed - startCompleted
  const cpuUs = cpuNow() - startCpu
  const elapsedMs = performance.now() - start
  await profile.stop()
  stop = true
  await Promise.all(workers)
  return { kind: task.kind, client: task.client, engine: task.engine, completed: done, elapsedMs, cpuUs, errors, ...(firstError ? { firstError } : {}) }
}

/** Open loop at a fixed rate: latency from each call's intended send time, so stalls are not hidden. */
async function openLoop(task: Extract<GrpcTask, { kind: 'aging' }>, caller: BenchCaller): Promise<GrpcResult> {
  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 })
  let errors = 0
  let firstError: string | undefined
  let completed = 0
  const inFlight = new Set<Promise<void>>()
  const fire = (due: number, record: boolean) => {
    const promise = caller.unary().then(
      () => {
        if (!record) return
        completed++
        histogram.recordValue(Math.max(1, Math.round((performance.now() - due) * 1000)))
      },
      (error: unknown) => {
        errors++
        firstError ??= String((error as Error)?.stack ?? error)
      },
    )
    inFlight.add(promise)
    void promise.finally(() => inFlight.delete(promise))
  }
  const t0 = performance.now()
  const total = Math.round(((task.warmupMs + task.durationMs) / 1000) * task.rate)
  const firstRecorded = Math.round((task.warmupMs / 1000) * task.rate)
  let startCpu = 0
  let start = 0
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / task.rate
    const wait = due - performance.now()
    if (wait > 1) await sleep(wait)
    if (i === firstRecorded) {
      startCpu = cpuNow()
      start = performance.now()
    }
    fire(due, i >= firstRecorded)
  }
  await Promise.all(inFlight)
  return {
    kind: 'aging',
    client: task.client,
    engine: task.engine,
    completed,
    elapsedMs: performance.now() - start,
    cpuUs: cpuNow() - startCpu,
    errors,
    ...(firstError ? { firstError } : {}),
    p50: histogram.getValueAtPercentile(50),
    p99: histogram.getValueAtPercentile(99),
    max: histogram.maxValue,
  }
}

async function runClient({ ports, tasks }: { ports: number[]; tasks: GrpcTask[] }): Promise<void> {
  const results: GrpcResult[] = []
  let failed = false
  for (const task of tasks) {
    const baseUrl = `http://127.0.0.1:${task.kind === 'aging' ? ports[1] : ports[0]}`
    const caller = await makeCaller(task.client, task.engine, baseUrl)
    try {
      // JIT warm-up, closed loop, before any window (calls an aging server fails are counted in the window only).
      for (let i = 0; i < task.warmupCalls; i += 50) await Promise.allSettled(Array.from({ length: 50 }, () => caller.unary()))
      results.push(task.kind === 'aging' ? await openLoop(task, caller) : await closedLoop(task, caller))
    } catch (error) {
      failed = true
      console.error(`grpc bench: ${JSON.stringify(task)} failed:`, error)
    } finally {
      await caller.close()
    }
    if (failed) break
  }
  const cpu = process.cpuUsage()
  process.stdout.write(`${RESULT_MARKER}${JSON.stringify({ results, cpuMs: (cpu.user + cpu.system) / 1000 })}\n`)
  process.exit(failed ? 1 : 0)
}

// ── The orchestrator ─────────────────────────────────────────────────────

/** What to measure (plan.ts decides it with the rest of the run). */
export interface GrpcPlan {
  runs: number
  /** drainpipe's rows are measured on each. */
  engines: readonly EngineName[]
  /** All clients in one child per run (quick mode: the harness, not the figures). */
  oneChild: boolean
  warmupCalls: number
  unary: { concurrency: number; warmupMs: number; durationMs: number }
  stream: { concurrency: number; messages: number; warmupMs: number; durationMs: number }
  aging: { rate: number; warmupMs: number; durationMs: number; ageMs: number }
  /** `--profile`: CPU profiles of the drainpipe children's measurement windows go here. */
  profileDir: string | undefined
}

/** How to start children (run.ts knows). */
export interface GrpcRunner {
  repoRoot: string
  /** bench/out/build when run.ts compiled the bench and lib/ with tsc; otherwise the children run through tsx. */
  buildDir: string | undefined
  /** `taskset -c CPU` in front of a command. */
  pinned: (cpu: number | undefined, command: string, args: string[]) => [string, string[]]
  progress: (text: string) => void
  serverCpu: number
  clientCpu: number
}

export interface GrpcBenchReport {
  tables: Table[]
  checks: Check[]
  failures: string[]
}

interface Row {
  client: GrpcClientName
  engine: EngineName | undefined
  name: string
}

const selfPath = fileURLToPath(import.meta.url)

function entry(runner: GrpcRunner): string[] {
  if (runner.buildDir) {
    const built = path.join(runner.buildDir, 'bench', 'scenarios', 'grpc.js')
    if (existsSync(built)) return [built]
  }
  return ['--import', 'tsx', selfPath]
}

async function startServer(runner: GrpcRunner, ageMs: number): Promise<{ ports: number[]; child: ChildProcess }> {
  const [command, args] = runner.pinned(runner.serverCpu, process.execPath, [...entry(runner), 'server', JSON.stringify({ ageMs: [ageMs] })])
  const child = spawn(command, args, { cwd: runner.repoRoot, stdio: ['pipe', 'pipe', 'inherit'] })
  let output = ''
  const ports = await new Promise<number[]>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes('\n')) resolve(JSON.parse(output.split('\n')[0]!) as number[])
    })
    child.once('exit', (code) => reject(new Error(`the gRPC bench server exited with ${code} before listening`)))
  })
  return { ports, child }
}

/** Runs the tasks in a child pinned to the client core; also says how many cores' worth of CPU other processes took meanwhile. */
async function measure(
  runner: GrpcRunner,
  server: { ports: number[]; child: ChildProcess },
  tasks: GrpcTask[],
  failures: string[],
): Promise<{ results: GrpcResult[]; foreignCores: number }> {
  const { ports } = server
  const [command, args] = runner.pinned(runner.clientCpu, process.execPath, [...entry(runner), 'client', JSON.stringify({ ports, tasks })])
  const timeoutMs = tasks.reduce((sum, task) => sum + task.warmupMs + task.durationMs, 0) + 60_000
  const meter = startMeter(server.child.pid)
  const what = tasks.map((task) => `${task.kind} ${rowName(task.client, task.engine)}`).join(', ')
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: runner.repoRoot, stdio: ['ignore', 'pipe', 'inherit'] })
    let stdout = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    const timer = setTimeout(() => {
      failures.push(`gRPC ${what}: no result within ${timeoutMs} ms (hang?); killed`)
      child.kill('SIGKILL')
    }, timeoutMs)
    child.on('close', (code) => {
      clearTimeout(timer)
      const line = stdout.split('\n').find((text) => text.startsWith(RESULT_MARKER))
      const { results, cpuMs } = line
        ? (JSON.parse(line.slice(RESULT_MARKER.length)) as { results: GrpcResult[]; cpuMs: number })
        : { results: [], cpuMs: 0 }
      const { foreignCores } = meter.stop(cpuMs)
      if (code !== 0) failures.push(`gRPC ${what}: the child exited with ${code}`)
      for (const result of results) {
        if (result.errors > 0) failures.push(`gRPC ${result.kind} ${rowName(result.client, result.engine)}: ${result.errors} failed calls; first: ${result.firstError}`)
      }
      resolve({ results, foreignCores })
    })
  })
}

/** Runs every gRPC measurement and returns its tables and targets (for run.ts). */
export async function grpcBench(plan: GrpcPlan, runner: GrpcRunner): Promise<GrpcBenchReport> {
  const rows: Row[] = GRPC_CLIENTS.flatMap((client): Row[] =>
    client.startsWith('drainpipe') ? plan.engines.map((engine) => ({ client, engine, name: rowName(client, engine) })) : [{ client, engine: undefined, name: client }],
  )
  const failures: string[] = []
  const results: GrpcResult[] = []
  const interference: number[] = []
  const server = await startServer(runner, plan.aging.ageMs)
  try {
    for (let run = 0; run < plan.runs; run++) {
      const batches: GrpcTask[][] = []
      for (let i = 0; i < rows.length; i++) {
        const { client, engine } = rows[(i + run) % rows.length]!
        const common = { client, engine, warmupCalls: plan.warmupCalls }
        const tasks: GrpcTask[] = [
          { kind: 'unary', ...common, ...plan.unary },
          { kind: 'stream', ...common, ...plan.stream },
        ]
        // The floor has no gRPC status handling to survive an aging server with.
        if (client !== FLOOR) tasks.push({ kind: 'aging', ...common, ...plan.aging })
        if (plan.profileDir && client.startsWith('drainpipe')) {
          for (const task of tasks) task.profileDir = path.join(plan.profileDir, `run${run + 1}`)
        }
        batches.push(tasks)
      }
      for (const tasks of plan.oneChild ? [batches.flat()] : batches) {
        runner.progress(`run ${run + 1}/${plan.runs}: gRPC ${plan.oneChild ? 'all clients' : rowName(tasks[0]!.client, tasks[0]!.engine)}`)
        const measured = await measure(runner, server, tasks, failures)
        results.push(...measured.results)
        interference.push(measured.foreignCores)
      }
    }
  } finally {
    server.child.stdin!.end()
    const exited = new Promise((resolve) => server.child.once('exit', resolve))
    await Promise.race([exited, sleep(2000)])
    if (server.child.exitCode === null) server.child.kill('SIGKILL')
  }
  return report(results, rows, plan, failures, interference)
}

function report(results: GrpcResult[], rows: Row[], plan: GrpcPlan, failures: string[], interference: number[]): GrpcBenchReport {
  const of = (kind: GrpcTask['kind'], name: string) => results.filter((result) => result.kind === kind && rowName(result.client, result.engine) === name)
  const cpuPer = (kind: GrpcTask['kind'], name: string) => {
    const list = of(kind, name).filter((result) => result.completed > 0)
    return list.length ? median(list.map((result) => result.cpuUs / result.completed)) : undefined
  }
  const rate = (kind: GrpcTask['kind'], name: string) => {
    const list = of(kind, name).filter((result) => result.elapsedMs > 0)
    return list.length ? median(list.map((result) => (result.completed * 1000) / result.elapsedMs)) : undefined
  }
  const runsOf = (kind: GrpcTask['kind'], name: string) =>
    of(kind, name)
      .filter((result) => result.completed > 0)
      .map((result) => formatNumber(result.cpuUs / result.completed, 1))
      .join(', ')
  const perCpuSecond = (name: string) => {
    const cpu = cpuPer('stream', name)
    return cpu === undefined ? undefined : 1_000_000 / cpu
  }
  const latencyOf = (name: string, field: 'p50' | 'p99' | 'max') => {
    const list = of('aging', name)
    return list.length ? median(list.map((result) => result[field] ?? NaN)) : undefined
  }
  const failedCalls = (name: string) => (of('aging', name).length ? of('aging', name).reduce((sum, result) => sum + result.errors, 0) : undefined)
  /** What the gRPC layer costs on each engine: drainpipe/grpc − the floor on the same engine. */
  const layer = (kind: 'unary' | 'stream', digits: number) =>
    plan.engines
      .map((engine) => {
        const dp = cpuPer(kind, rowName(DRAINPIPE, engine))
        const floor = cpuPer(kind, rowName(FLOOR, engine))
        return `${engine} ${formatNumber(dp === undefined || floor === undefined ? undefined : dp - floor, digits)} µs`
      })
      .join(', ')
  const tables: Table[] = [
    {
      title: `gRPC unary, ${plan.unary.concurrency} calls in flight, h2c, grpc-js server (client CPU per call; median of runs)`,
      head: ['client', 'calls/s', 'CPU/call', '× grpc-js', 'CPU/call of each run'],
      right: [1, 2, 3],
      rows: rows.map(({ name }) => [
        name,
        formatNumber(rate('unary', name)),
        `${formatNumber(cpuPer('unary', name), 1)} µs`,
        formatRatio(ratio(cpuPer('unary', name), cpuPer('unary', GRPC_JS))),
        runsOf('unary', name),
      ]),
      notes: [
        `The gRPC layer of drainpipe/grpc (drainpipe/grpc − the floor on the same engine), per call: ${layer('unary', 1)}; the rest is the HTTP/2 engine and drainpipe's dispatch.`,
        `Other processes used a median of ${median(interference).toFixed(2)} cores (max ${Math.max(0, ...interference).toFixed(2)}) during the gRPC measurements: CPU per call rises for every client on a busy machine (less batching), so compare ratios within a run.`,
      ],
    },
    {
      title: `gRPC server streaming, ${plan.stream.concurrency} streams of ${formatNumber(plan.stream.messages)} messages in flight (messages per client CPU-second)`,
      head: ['client', 'messages/s', 'messages/CPU-s', '× grpc-js', 'CPU/message of each run (µs)'],
      right: [1, 2, 3],
      rows: rows.map(({ name }) => [
        name,
        formatNumber(rate('stream', name)),
        formatNumber(perCpuSecond(name)),
        formatRatio(ratio(perCpuSecond(name), perCpuSecond(GRPC_JS))),
        runsOf('stream', name),
      ]),
      notes: [`The gRPC layer per streamed message (drainpipe/grpc − the floor on the same engine): ${layer('stream', 2)}.`],
    },
    {
      title: `gRPC unary at ${formatNumber(plan.aging.rate)} calls/s while the server ages out every connection after ${formatNumber(plan.aging.ageMs)} ms (grpc.max_connection_age_ms, grace 30 s)`,
      head: ['client', 'p50', 'p99', 'max', 'CPU/call', 'failed calls', 'runs'],
      right: [1, 2, 3, 4, 5, 6],
      rows: rows
        .filter((row) => row.client !== FLOOR)
        .map(({ name }) => [
          name,
          formatMicros(latencyOf(name, 'p50')),
          formatMicros(latencyOf(name, 'p99')),
          formatMicros(latencyOf(name, 'max')),
          `${formatNumber(cpuPer('aging', name), 1)} µs`,
          String(failedCalls(name) ?? '—'),
          String(of('aging', name).length),
        ]),
      notes: ["Latency from each call's intended send time (open loop, coordinated omission corrected)."],
    },
  ]
  const perEngine = (value: (name: string) => number | undefined) => {
    const values: Partial<Record<EngineName, number>> = {}
    for (const engine of plan.engines) {
      const figure = value(rowName(DRAINPIPE, engine))
      if (figure !== undefined) values[engine] = figure
    }
    return values
  }
  const checks: Check[] = [
    {
      name: "gRPC unary ≥ 2× the grpc-js client's calls per CPU-second (≤ 0.5× its CPU per call)",
      values: perEngine((name) => ratio(cpuPer('unary', GRPC_JS), cpuPer('unary', name))),
      met: (value) => value >= 2,
      show: formatRatio,
    },
    {
      name: "gRPC unary ≥ 4× connect-node createGrpcTransport's calls per CPU-second",
      values: perEngine((name) => ratio(cpuPer('unary', CONNECT_NODE), cpuPer('unary', name))),
      met: (value) => value >= 4,
      show: formatRatio,
    },
    {
      name: "gRPC server streaming ≥ 1× the grpc-js client's messages per CPU-second",
      values: perEngine((name) => ratio(perCpuSecond(name), perCpuSecond(GRPC_JS))),
      met: (value) => value >= 1,
      show: formatRatio,
    },
    {
      name: `gRPC: 0 failed calls through drainpipe/grpc while the server ages connections (${formatNumber(plan.aging.ageMs)} ms)`,
      values: perEngine(failedCalls),
      met: (value) => value === 0,
      show: (value) => (value === undefined ? '—' : `${value} failed`),
    },
  ]
  // Peers failing calls through an aging server is a finding, not a broken harness.
  const harnessFailures = failures.filter((failure) => !/^gRPC aging (grpc-js client|connect-node)/.test(failure))
  return { tables, checks, failures: harnessFailures }
}

// ── Child entry ──────────────────────────────────────────────────────────

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [mode, json] = process.argv.slice(2)
  if (mode === 'server') await serve((JSON.parse(json ?? '{}') as { ageMs: number[] }).ageMs)
  else if (mode === 'client') await runClient(JSON.parse(json ?? '{}') as { ports: number[]; tasks: GrpcTask[] })
}

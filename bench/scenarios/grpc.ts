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
import { median, RESULT_MARKER, sleep } from '../common.js'
import { startMeter } from '../interference.js'
import { profileWindow } from '../profiler.js'
import { formatMicros, formatNumber, formatRatio, type Table } from '../report.js'
import { EchoRequestSchema, EchoResponseSchema, EchoService, type EchoRequest } from '../../test/grpc/gen/echo_pb.js'

export const GRPC_CLIENTS = ['grpc-js client', 'connect-node createGrpcTransport', 'drainpipe/grpc', 'drainpipe dispatch (floor)'] as const
export type GrpcClientName = (typeof GRPC_CLIENTS)[number]
const GRPC_JS = 'grpc-js client'
const CONNECT_NODE = 'connect-node createGrpcTransport'
const DRAINPIPE = 'drainpipe/grpc'
const FLOOR = 'drainpipe dispatch (floor)'

type GrpcTask = (
  | { kind: 'unary'; client: GrpcClientName; concurrency: number; warmupMs: number; durationMs: number }
  | { kind: 'stream'; client: GrpcClientName; concurrency: number; messages: number; warmupMs: number; durationMs: number }
  | { kind: 'aging'; client: GrpcClientName; rate: number; warmupMs: number; durationMs: number; ageMs: number }
) & {
  /** Unary calls (50 at a time) that warm the JIT before the task's own warm-up. */
  warmupCalls: number
  /** Write a CPU profile of the measurement window here (`--profile`). */
  profileDir?: string
}

interface GrpcResult {
  kind: GrpcTask['kind']
  client: GrpcClientName
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

async function makeCaller(name: GrpcClientName, baseUrl: string): Promise<BenchCaller> {
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
      const owned = name === DRAINPIPE ? (await import('../../lib/grpc.js')).createGrpcTransport({ baseUrl }) : undefined
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
      const client = new Client({ h2c: true, retryBufferSize: 256 * 1024 })
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
  const profile = await profileWindow(task.profileDir, `grpc ${task.kind} ${task.client}`)
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
  return { kind: task.kind, client: task.client, completed: done, elapsedMs, cpuUs, errors, ...(firstError ? { firstError } : {}) }
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
    const caller = await makeCaller(task.client, baseUrl)
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

export interface GrpcBenchOptions {
  quick: boolean
  runs: number
  repoRoot: string
  /** bench/out/build when run.ts compiled the bench and lib/ with tsc; otherwise the children run through tsx. */
  buildDir: string | undefined
  /** `taskset -c CPU` in front of a command. */
  pinned: (cpu: number | undefined, command: string, args: string[]) => [string, string[]]
  progress: (text: string) => void
  serverCpu: number
  clientCpu: number
  /** `--profile`: CPU profiles of the drainpipe children's measurement windows go here. */
  profileDir: string | undefined
}

export interface GrpcCheck {
  name: string
  value: number | undefined
  limit: number
  kind: 'min' | 'max'
  show: (value: number | undefined) => string
  note?: string
}

export interface GrpcBenchReport {
  tables: Table[]
  checks: GrpcCheck[]
  failures: string[]
}

const selfPath = fileURLToPath(import.meta.url)

function entry(options: GrpcBenchOptions): string[] {
  if (options.buildDir) {
    const built = path.join(options.buildDir, 'bench', 'scenarios', 'grpc.js')
    if (existsSync(built)) return [built]
  }
  return ['--import', 'tsx', selfPath]
}

async function startServer(options: GrpcBenchOptions, ageMs: number): Promise<{ ports: number[]; child: ChildProcess }> {
  const [command, args] = options.pinned(options.serverCpu, process.execPath, [...entry(options), 'server', JSON.stringify({ ageMs: [ageMs] })])
  const child = spawn(command, args, { cwd: options.repoRoot, stdio: ['pipe', 'pipe', 'inherit'] })
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
  options: GrpcBenchOptions,
  server: { ports: number[]; child: ChildProcess },
  tasks: GrpcTask[],
  failures: string[],
): Promise<{ results: GrpcResult[]; foreignCores: number }> {
  const { ports } = server
  const [command, args] = options.pinned(options.clientCpu, process.execPath, [...entry(options), 'client', JSON.stringify({ ports, tasks })])
  const timeoutMs = tasks.reduce((sum, task) => sum + task.warmupMs + task.durationMs, 0) + 60_000
  const meter = startMeter(server.child.pid)
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: options.repoRoot, stdio: ['ignore', 'pipe', 'inherit'] })
    let stdout = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    const timer = setTimeout(() => {
      failures.push(`gRPC ${tasks[0]?.client}: no result within ${timeoutMs} ms (hang?); killed`)
      child.kill('SIGKILL')
    }, timeoutMs)
    child.on('close', (code) => {
      clearTimeout(timer)
      const line = stdout.split('\n').find((text) => text.startsWith(RESULT_MARKER))
      const { results, cpuMs } = line
        ? (JSON.parse(line.slice(RESULT_MARKER.length)) as { results: GrpcResult[]; cpuMs: number })
        : { results: [], cpuMs: 0 }
      const { foreignCores } = meter.stop(cpuMs)
      if (code !== 0) failures.push(`gRPC ${tasks.map((task) => `${task.kind} ${task.client}`).join(', ')}: the child exited with ${code}`)
      for (const result of results) {
        if (result.errors > 0) failures.push(`gRPC ${result.kind} ${result.client}: ${result.errors} failed calls; first: ${result.firstError}`)
      }
      resolve({ results, foreignCores })
    })
  })
}

/** Runs every gRPC measurement and returns its tables and targets (for run.ts). */
export async function grpcBench(options: GrpcBenchOptions): Promise<GrpcBenchReport> {
  const plan = options.quick
    ? {
        warmupCalls: 100,
        unary: { concurrency: 100, warmupMs: 200, durationMs: 300 },
        stream: { concurrency: 10, messages: 1_000, warmupMs: 200, durationMs: 300 },
        aging: { rate: 500, warmupMs: 100, durationMs: 1_000, ageMs: 300 },
      }
    : {
        warmupCalls: 2_000,
        unary: { concurrency: 100, warmupMs: 1_000, durationMs: 3_000 },
        stream: { concurrency: 10, messages: 1_000, warmupMs: 1_000, durationMs: 3_000 },
        aging: { rate: 500, warmupMs: 1_500, durationMs: 6_000, ageMs: 1_000 },
      }
  const failures: string[] = []
  const results: GrpcResult[] = []
  const interference: number[] = []
  const server = await startServer(options, plan.aging.ageMs)
  try {
    for (let run = 0; run < options.runs; run++) {
      const batches: GrpcTask[][] = []
      for (let i = 0; i < GRPC_CLIENTS.length; i++) {
        const client = GRPC_CLIENTS[(i + run) % GRPC_CLIENTS.length]!
        const tasks: GrpcTask[] = [
          { kind: 'unary', client, warmupCalls: plan.warmupCalls, ...plan.unary },
          { kind: 'stream', client, warmupCalls: plan.warmupCalls, ...plan.stream },
        ]
        // The floor has no gRPC status handling to survive an aging server with.
        if (client !== FLOOR) tasks.push({ kind: 'aging', client, warmupCalls: plan.warmupCalls, ...plan.aging })
        if (options.profileDir && client.startsWith('drainpipe')) {
          for (const task of tasks) task.profileDir = path.join(options.profileDir, `run${run + 1}`)
        }
        batches.push(tasks)
      }
      // Quick mode exercises the harness, not the figures: one child for every client saves three start-ups.
      for (const tasks of options.quick ? [batches.flat()] : batches) {
        options.progress(`run ${run + 1}/${options.runs}: gRPC ${options.quick ? 'all clients' : tasks[0]!.client}`)
        const measured = await measure(options, server, tasks, failures)
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
  return report(results, plan, failures, interference)
}

function report(
  results: GrpcResult[],
  plan: { unary: { concurrency: number }; stream: { concurrency: number; messages: number }; aging: { rate: number; ageMs: number } },
  failures: string[],
  interference: number[],
): GrpcBenchReport {
  const of = (kind: GrpcTask['kind'], client: GrpcClientName) => results.filter((result) => result.kind === kind && result.client === client)
  const cpuPer = (kind: GrpcTask['kind'], client: GrpcClientName) => {
    const list = of(kind, client).filter((result) => result.completed > 0)
    return list.length ? median(list.map((result) => result.cpuUs / result.completed)) : undefined
  }
  const rate = (kind: GrpcTask['kind'], client: GrpcClientName) => {
    const list = of(kind, client).filter((result) => result.elapsedMs > 0)
    return list.length ? median(list.map((result) => (result.completed * 1000) / result.elapsedMs)) : undefined
  }
  const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || b === 0 ? undefined : a / b)
  const runsOf = (kind: GrpcTask['kind'], client: GrpcClientName) =>
    of(kind, client)
      .filter((result) => result.completed > 0)
      .map((result) => formatNumber(result.cpuUs / result.completed, 1))
      .join(', ')
  const unaryRows = GRPC_CLIENTS.map((client) => [
    client,
    formatNumber(rate('unary', client)),
    `${formatNumber(cpuPer('unary', client), 1)} µs`,
    formatRatio(ratio(cpuPer('unary', client), cpuPer('unary', GRPC_JS))),
    runsOf('unary', client),
  ])
  const perCpuSecond = (client: GrpcClientName) => {
    const cpu = cpuPer('stream', client)
    return cpu === undefined ? undefined : 1_000_000 / cpu
  }
  const streamRows = GRPC_CLIENTS.map((client) => [
    client,
    formatNumber(rate('stream', client)),
    formatNumber(perCpuSecond(client)),
    formatRatio(ratio(perCpuSecond(client), perCpuSecond(GRPC_JS))),
    runsOf('stream', client),
  ])
  const latencyOf = (client: GrpcClientName, field: 'p50' | 'p99' | 'max') => {
    const list = of('aging', client)
    return list.length ? median(list.map((result) => result[field] ?? NaN)) : undefined
  }
  const agingClients = GRPC_CLIENTS.filter((client) => client !== FLOOR)
  const agingRows = agingClients.map((client) => [
    client,
    formatMicros(latencyOf(client, 'p50')),
    formatMicros(latencyOf(client, 'p99')),
    formatMicros(latencyOf(client, 'max')),
    `${formatNumber(cpuPer('aging', client), 1)} µs`,
    String(of('aging', client).reduce((sum, result) => sum + result.errors, 0)),
    String(of('aging', client).length),
  ])
  const layer = (kind: 'unary' | 'stream') => {
    const dp = cpuPer(kind, DRAINPIPE)
    const floor = cpuPer(kind, FLOOR)
    return dp === undefined || floor === undefined ? undefined : dp - floor
  }
  const tables: Table[] = [
    {
      title: `gRPC unary, ${plan.unary.concurrency} calls in flight, h2c, grpc-js server (client CPU per call; median of runs)`,
      head: ['client', 'calls/s', 'CPU/call', '× grpc-js', 'CPU/call of each run'],
      right: [1, 2, 3],
      rows: unaryRows,
      notes: [
        `The gRPC layer of drainpipe/grpc (drainpipe/grpc − floor): ${formatNumber(layer('unary'), 1)} µs per call; the rest is today's HTTP/2 engine (node:http2) and drainpipe's dispatch.`,
        `Other processes used a median of ${median(interference).toFixed(2)} cores (max ${Math.max(0, ...interference).toFixed(2)}) during the gRPC measurements: CPU per call rises for every client on a busy machine (less batching), so compare ratios within a run.`,
      ],
    },
    {
      title: `gRPC server streaming, ${plan.stream.concurrency} streams of ${formatNumber(plan.stream.messages)} messages in flight (messages per client CPU-second)`,
      head: ['client', 'messages/s', 'messages/CPU-s', '× grpc-js', 'CPU/message of each run (µs)'],
      right: [1, 2, 3],
      rows: streamRows,
      notes: [`The gRPC layer per streamed message (drainpipe/grpc − floor): ${formatNumber(layer('stream'), 2)} µs.`],
    },
    {
      title: `gRPC unary at ${formatNumber(plan.aging.rate)} calls/s while the server ages out every connection after ${formatNumber(plan.aging.ageMs)} ms (grpc.max_connection_age_ms, grace 30 s)`,
      head: ['client', 'p50', 'p99', 'max', 'CPU/call', 'failed calls', 'runs'],
      right: [1, 2, 3, 4, 5, 6],
      rows: agingRows,
      notes: ['Latency from each call\'s intended send time (open loop, coordinated omission corrected).'],
    },
  ]
  const failedThrough = (client: GrpcClientName) =>
    of('aging', client).length ? of('aging', client).reduce((sum, result) => sum + result.errors, 0) : undefined
  const checks: GrpcCheck[] = [
    {
      name: 'gRPC unary: drainpipe/grpc CPU per call ≤ 0.5× the grpc-js client\'s',
      value: ratio(cpuPer('unary', DRAINPIPE), cpuPer('unary', GRPC_JS)),
      limit: 0.5,
      kind: 'max',
      show: formatRatio,
    },
    {
      name: 'gRPC unary: connect-node\'s CPU per call ≥ 4× drainpipe/grpc\'s',
      value: ratio(cpuPer('unary', CONNECT_NODE), cpuPer('unary', DRAINPIPE)),
      limit: 4,
      kind: 'min',
      show: formatRatio,
    },
    {
      name: 'gRPC server streaming: drainpipe/grpc messages per CPU-second ≥ 1.0× grpc-js\'s',
      value: ratio(perCpuSecond(DRAINPIPE), perCpuSecond(GRPC_JS)),
      limit: 1,
      kind: 'min',
      show: formatRatio,
    },
    {
      name: `gRPC: 0 failed calls through drainpipe/grpc while the server ages connections (${formatNumber(plan.aging.ageMs)} ms)`,
      value: failedThrough(DRAINPIPE),
      limit: 1,
      kind: 'max',
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

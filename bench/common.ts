/**
 * Shared by the orchestrator (`run.ts`) and the measuring child (`worker.ts`):
 * the names of the clients and scenarios, the shape of a task and of its result.
 */
import { defaults, type EngineName } from '../lib/options.js'

/** drainpipe's HTTP/2 engines: every drainpipe row is measured on each. */
export const ENGINES: readonly EngineName[] = ['wire', 'node']
/** The engine the targets are judged on: the one users get without asking. */
export const DEFAULT_ENGINE: EngineName = defaults.engine

/** A row's name: the client, and for drainpipe the engine it ran on (`drainpipe request() [wire]`). */
export function rowName(client: string, engine: EngineName | undefined): string {
  return engine === undefined ? client : `${client} [${engine}]`
}

export const CLIENTS = [
  'drainpipe request()',
  'undici.request + drainpipe',
  'drainpipe fetch()',
  'node:http2 (raw)',
  'undici Client H2',
  'undici.fetch H2',
  'got + http2-wrapper',
] as const
export type ClientName = (typeof CLIENTS)[number]

/** The two references every figure is divided by. */
export const RAW: ClientName = 'node:http2 (raw)'
export const UNDICI: ClientName = 'undici Client H2'

export const THROUGHPUT_SCENARIOS = ['get', 'post', 'upload', 'download'] as const
export type ThroughputScenario = (typeof THROUGHPUT_SCENARIOS)[number]

export const SCENARIO_TITLES: Record<ThroughputScenario, string> = {
  get: 'Small GET, 100 concurrent (req/s)',
  post: 'Small POST (256 B body), 100 concurrent (req/s)',
  upload: '10 MiB upload, 1 at a time (MiB/s)',
  download: '10 MiB download, 1 at a time (MiB/s)',
}

export const PATHS = { small: '/small.json', large: '/10m.bin' } as const
export const LARGE_SIZE = 10 * 1024 * 1024
export const POST_SIZE = 256
/** The small POST body: 256 bytes of JSON. */
export const POST_BODY = JSON.stringify({ pad: 'x'.repeat(POST_SIZE - 10) })

/** Where the server is and how to trust it. */
export interface Target {
  /** `https://127.0.0.1:PORT`; drainpipe speaks h2c to an `http://` origin (the leak test's). */
  origin: string
  port: number
  /** Path of the CA certificate (PEM). */
  caPath: string
}

export type Task =
  | {
      kind: 'throughput'
      client: ClientName
      /** drainpipe's clients: the engine (undefined: the default, or DRAINPIPE_ENGINE). */
      engine?: EngineName
      scenario: ThroughputScenario
      concurrency: number
      warmupMs: number
      durationMs: number
      /** Write a CPU profile of the measurement window here. */
      profileDir?: string
    }
  | {
      kind: 'latency'
      client: ClientName
      engine?: EngineName
      /** drainpipe only: recycle the connection at this age (ms), jitter 0. */
      recycleMs: number | undefined
      rate: number
      warmupMs: number
      durationMs: number
      profileDir?: string
    }
  | {
      kind: 'recycles'
      /** drainpipe recycling at `ageMs`, or raw node:http2 connect → request → close cycles as the reference. */
      client: 'drainpipe' | 'node:http2 (raw)'
      engine?: EngineName
      recycles: number
      warmupRecycles: number
      ageMs: number
      /** Requests kept in flight (each loop sends the next when the last ends). */
      trickle: number
    }
  | { kind: 'idle-origins'; client: 'drainpipe' | 'undici Agent H2' | 'node:http2 (raw)'; engine?: EngineName; origins: number }

export interface ThroughputResult {
  kind: 'throughput'
  client: ClientName
  engine?: EngineName
  scenario: ThroughputScenario
  /** req/s for small requests, MiB/s for 10 MiB transfers. */
  value: number
  completed: number
  elapsedMs: number
  /** CPU time of the client process per request (µs): robust to a busy machine, unlike the rate. */
  cpuUsPerOp: number
  /** TCP connections to the server open at the end of the window. */
  connections: number
  errors: number
  firstError?: string
}

/** Latency summary of a subset of a run's requests (µs). */
export interface Split {
  count: number
  p50: number
  p99: number
  max: number
}

export interface LatencyResult {
  kind: 'latency'
  client: ClientName
  engine?: EngineName
  recycleMs: number | undefined
  rate: number
  /** Microseconds, from the intended send time (coordinated omission corrected). */
  p50: number
  p99: number
  p999: number
  max: number
  count: number
  recycles: number
  /** Recycling runs: requests in flight while a recycle was under way, and the others (µs). */
  duringRecycle?: Split
  outsideRecycle?: Split
  errors: number
  firstError?: string
}

export interface RecyclesResult {
  kind: 'recycles'
  client: 'drainpipe' | 'node:http2 (raw)'
  engine?: EngineName
  recycles: number
  failed: number
  elapsedMs: number
  requests: number
  heapBefore: number
  heapAfter: number
  rssBefore: number
  rssAfter: number
  errors: number
  firstError?: string
}

export interface IdleOriginsResult {
  kind: 'idle-origins'
  client: string
  engine?: EngineName
  origins: number
  heapBefore: number
  heapAfter: number
  rssBefore: number
  rssAfter: number
  connections: number
  elapsedMs: number
  errors: number
  firstError?: string
}

export type Result = ThroughputResult | LatencyResult | RecyclesResult | IdleOriginsResult

/** The child prints its results on one line starting with this marker. */
export const RESULT_MARKER = '@@drainpipe-bench-result '

export function median(values: number[]): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/** a ÷ b, undefined when either is missing or b is 0. */
export function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined || b === 0 ? undefined : a / b
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

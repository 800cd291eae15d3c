import { lookup as dnsLookup, type LookupAddress } from 'node:dns'
import type { ConnectionOptions } from 'node:tls'
import { InvalidOptionError } from './errors.js'
import { realClock, type Clock } from './clock.js'
import { parseHttpUrl } from './request.js'
import { checkKeys, checkKind, engineNames, show, type Kind } from './option-checks.js'

/**
 * Node's `dns.lookup` signature, called with `{ all: true }`; answering with
 * one address (as without `all`) works too, so `resolverLookup()` and other
 * `net.connect`-style lookups fit.
 */
export type LookupFunction = (
  hostname: string,
  options: { all: true },
  callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[] | string, family?: number) => void,
) => void

/** PING liveness settings (`keepAlive`). */
export interface KeepAliveOptions {
  /** Send a PING when nothing was received for this long (ms). */
  interval?: number
  /** No PING ACK within this long (ms) means the connection is dead. */
  timeout?: number
  /** Also ping connections without open streams (some servers punish idle pings). */
  whenIdle?: boolean
}

/** Reconnect backoff settings (`reconnectBackoff`). */
export interface BackoffOptions {
  /** First reconnect delay ceiling (ms); delays are drawn uniformly from [0, ceiling]. */
  base?: number
  /** Largest ceiling (ms); also how long a pool must live to reset the backoff. */
  max?: number
}

/**
 * Outlier detection (`outlierDetection`), as Envoy's consecutive-5xx and
 * gRPC's: consecutive failures on an address eject it for a while.
 */
export interface OutlierDetectionOptions {
  /** Failures in a row that eject an address: connect failures, resets, lost connections, timeouts (and server errors, see below). Default 5. */
  consecutiveFailures?: number
  /** Responses with status ≥ 500 and gRPC `UNAVAILABLE` count as failures. Default true. */
  countServerErrors?: boolean
  /** The first ejection's length (ms); each further one is longer by as much. Default 2000. */
  baseEjectionTime?: number
  /** The longest an ejection lasts (ms). Default 30000. */
  maxEjectionTime?: number
  /** The most addresses ejected at once, in percent of the origin's (at least one of two or more; 0: never eject). Default 50. */
  maxEjectionPercent?: number
}

/** Slow start (`slowStart`), as Envoy's: a new or returning address's share ramps up. */
export interface SlowStartOptions {
  /** How long the ramp takes (ms). Default 5000; an address new in DNS ramps over half a `maxConnectionAge` at most. */
  window?: number
  /** The share an address starts with, relative to a warm one's: more than 0, at most 1. Default 0.1. */
  minWeight?: number
}

/** TLS options passed to `tls.connect` (ca, cert, key, rejectUnauthorized, …). */
export type ConnectOptions = Omit<ConnectionOptions, 'host' | 'port' | 'socket' | 'ALPNProtocols' | 'path'>

/** Options that can be set per client and overridden per origin. */
export interface PoolOptions {
  /** Pools (HTTP/2 connections) per origin. Default 1. */
  count?: number
  /** Age (ms) after which a connection is recycled. 0 = never. Default 0. */
  maxConnectionAge?: number
  /** Uniform extra age in [0, jitter] (ms). Default 10% of `maxConnectionAge`. */
  maxConnectionAgeJitter?: number
  /** How long a draining connection waits for its streams (ms). Default 30000. */
  drainTimeout?: number
  /** Wait after a failed recycle before the next try (ms). Default 30000. */
  recycleCooldown?: number
  /** PING liveness; `false` turns it off. Default `{ interval: 30000, timeout: 10000, whenIdle: false }`. */
  keepAlive?: KeepAliveOptions | false
  /** Close a connection with no streams for this long (ms). 0 = never. Default 0. */
  idleTimeout?: number
  /** DNS + TCP + TLS + the server's SETTINGS (ms). Default 10000. */
  connectTimeout?: number
  /** Recycle a connection after this many streams. 0 = no limit. Default 0. */
  maxRequestsPerConnection?: number
  /** Transparent retries of requests the server provably did not process. Default 3, at most 10. */
  retries?: number
  /**
   * Bytes of a streamed request body kept until the response starts, so an
   * unprocessed attempt can be sent again from the first byte. Default 65536.
   */
  retryBufferSize?: number
  /** Resolver with Node's `dns.lookup` signature. Called afresh for every new connection. */
  lookup?: LookupFunction
  /** TLS options. Verification is on unless `rejectUnauthorized: false` is given. */
  connect?: ConnectOptions
  /** Speak HTTP/2 without TLS (prior knowledge) to `http://` origins. Default false. */
  h2c?: boolean
  /** Requests that may wait for a stream slot or a connection, per origin; at least 1. Default 10000. */
  maxQueue?: number
  /** The largest response header block accepted, in bytes as HTTP/2 counts it (RFC 7541 §4.1: name + value + 32 per field). Default 65536. */
  maxHeaderSize?: number
  /** The most fields a response header block may have. Default 128 (node:http2's default). */
  maxHeaderFields?: number
  /**
   * What speaks HTTP/2: `'wire'`, drainpipe's own engine, or `'node'`,
   * node:http2. Default `'wire'`; the environment variable
   * `DRAINPIPE_ENGINE` changes the default without a code change.
   */
  engine?: EngineName
  /** Default time (ms) to wait for response headers. Default 300000. */
  headersTimeout?: number
  /** Default idle time (ms) between response body chunks. Default 300000. */
  bodyTimeout?: number
  /** Exponential backoff with full jitter for reconnects after unplanned losses. Default `{ base: 250, max: 30000 }`. */
  reconnectBackoff?: BackoffOptions
  /**
   * Eject addresses that keep failing; `false` turns it off. Default
   * `{ consecutiveFailures: 5, countServerErrors: true, baseEjectionTime: 2000, maxEjectionTime: 30000, maxEjectionPercent: 50 }`.
   */
  outlierDetection?: OutlierDetectionOptions | false
  /** Ramp up the share of new and returning addresses; `false` turns it off. Default `{ window: 5000, minWeight: 0.1 }`. */
  slowStart?: SlowStartOptions | false
}

export interface ClientOptions extends PoolOptions {
  /** Per-origin overrides, keyed by origin (`https://api.example:8443`). */
  origins?: Record<string, PoolOptions>
  /** Time source for every lifecycle timer (tests inject a manual clock). */
  clock?: Clock
  /** Random source in [0, 1) for jitter (tests inject a fixed one). */
  random?: () => number
}

/** The HTTP/2 engines a client can use. */
export type EngineName = 'wire' | 'node'

/** Outlier detection with every value resolved. */
export type OutlierDetection = Required<OutlierDetectionOptions>
/** Slow start with every value resolved. */
export type SlowStart = Required<SlowStartOptions>

/** Every option resolved to a value, for one origin. */
export interface ResolvedOptions {
  count: number
  maxConnectionAge: number
  maxConnectionAgeJitter: number
  drainTimeout: number
  recycleCooldown: number
  keepAlive: Required<KeepAliveOptions> | false
  idleTimeout: number
  connectTimeout: number
  maxRequestsPerConnection: number
  retries: number
  retryBufferSize: number
  lookup: LookupFunction
  connect: ConnectOptions
  h2c: boolean
  maxQueue: number
  maxHeaderSize: number
  maxHeaderFields: number
  engine: EngineName
  headersTimeout: number
  bodyTimeout: number
  reconnectBackoff: Required<BackoffOptions>
  outlierDetection: OutlierDetection | false
  slowStart: SlowStart | false
}

export const defaults = {
  count: 1,
  maxConnectionAge: 0,
  drainTimeout: 30_000,
  recycleCooldown: 30_000,
  keepAlive: { interval: 30_000, timeout: 10_000, whenIdle: false },
  idleTimeout: 0,
  connectTimeout: 10_000,
  maxRequestsPerConnection: 0,
  retries: 3,
  retryBufferSize: 64 * 1024,
  h2c: false,
  maxQueue: 10_000,
  maxHeaderSize: 64 * 1024,
  maxHeaderFields: 128,
  engine: 'wire' as EngineName,
  headersTimeout: 300_000,
  bodyTimeout: 300_000,
  reconnectBackoff: { base: 250, max: 30_000 },
  outlierDetection: { consecutiveFailures: 5, countServerErrors: true, baseEjectionTime: 2_000, maxEjectionTime: 30_000, maxEjectionPercent: 50 },
  slowStart: { window: 5_000, minWeight: 0.1 },
} as const

const MAX_RETRIES = 10

const poolOptionKinds: Record<keyof PoolOptions, Kind> = {
  count: 'positive',
  maxConnectionAge: 'duration',
  maxConnectionAgeJitter: 'duration',
  drainTimeout: 'duration',
  recycleCooldown: 'duration',
  keepAlive: 'keepAlive',
  idleTimeout: 'duration',
  connectTimeout: 'duration',
  maxRequestsPerConnection: 'count',
  retries: 'count',
  retryBufferSize: 'count',
  lookup: 'function',
  connect: 'tls',
  h2c: 'boolean',
  maxQueue: 'positive',
  maxHeaderSize: 'positive',
  maxHeaderFields: 'positive',
  engine: 'engine',
  headersTimeout: 'duration',
  bodyTimeout: 'duration',
  reconnectBackoff: 'backoff',
  outlierDetection: 'outliers',
  slowStart: 'slowStart',
}

const clientOnlyKinds = { origins: 'object', clock: 'object', random: 'function' } as const

const defaultLookup: LookupFunction = (hostname, options, callback) => dnsLookup(hostname, options, callback)

/** The engine when no option names one: `DRAINPIPE_ENGINE` if set (an escape hatch that needs no deploy), else the default. */
function defaultEngine(): EngineName {
  const fromEnvironment = process.env.DRAINPIPE_ENGINE
  if (fromEnvironment === undefined || fromEnvironment === '') return defaults.engine
  if (!engineNames.includes(fromEnvironment as EngineName)) {
    throw new InvalidOptionError(`The environment variable DRAINPIPE_ENGINE must be ${engineNames.map((name) => `'${name}'`).join(' or ')}, got ${show(fromEnvironment)}`)
  }
  return fromEnvironment as EngineName
}

/** Merges defaults, client options and one origin's overrides, then checks the combinations. */
function resolve(layers: PoolOptions[], where: string): ResolvedOptions {
  const pick = <K extends keyof PoolOptions>(key: K): PoolOptions[K] => {
    for (let i = layers.length - 1; i >= 0; i--) {
      const value = layers[i]![key]
      if (value !== undefined) return value
    }
    return undefined
  }
  const maxConnectionAge = pick('maxConnectionAge') ?? defaults.maxConnectionAge
  const jitterOption = pick('maxConnectionAgeJitter')
  const keepAliveOption = pick('keepAlive')
  const backoff = pick('reconnectBackoff')
  const outliers = pick('outlierDetection')
  const slowStart = pick('slowStart')
  const resolved: ResolvedOptions = {
    count: pick('count') ?? defaults.count,
    maxConnectionAge,
    maxConnectionAgeJitter: jitterOption ?? Math.round(maxConnectionAge * 0.1),
    drainTimeout: pick('drainTimeout') ?? defaults.drainTimeout,
    recycleCooldown: pick('recycleCooldown') ?? defaults.recycleCooldown,
    keepAlive: keepAliveOption === false ? false : { ...defaults.keepAlive, ...stripUndefined(keepAliveOption ?? {}) },
    idleTimeout: pick('idleTimeout') ?? defaults.idleTimeout,
    connectTimeout: pick('connectTimeout') ?? defaults.connectTimeout,
    maxRequestsPerConnection: pick('maxRequestsPerConnection') ?? defaults.maxRequestsPerConnection,
    retries: pick('retries') ?? defaults.retries,
    retryBufferSize: pick('retryBufferSize') ?? defaults.retryBufferSize,
    lookup: pick('lookup') ?? defaultLookup,
    connect: pick('connect') ?? {},
    h2c: pick('h2c') ?? defaults.h2c,
    maxQueue: pick('maxQueue') ?? defaults.maxQueue,
    maxHeaderSize: pick('maxHeaderSize') ?? defaults.maxHeaderSize,
    maxHeaderFields: pick('maxHeaderFields') ?? defaults.maxHeaderFields,
    engine: pick('engine') ?? defaultEngine(),
    headersTimeout: pick('headersTimeout') ?? defaults.headersTimeout,
    bodyTimeout: pick('bodyTimeout') ?? defaults.bodyTimeout,
    reconnectBackoff: { ...defaults.reconnectBackoff, ...stripUndefined(backoff ?? {}) },
    outlierDetection: outliers === false ? false : { ...defaults.outlierDetection, ...stripUndefined(outliers ?? {}) },
    slowStart: slowStart === false ? false : { ...defaults.slowStart, ...stripUndefined(slowStart ?? {}) },
  }

  const conflict = (message: string) => new InvalidOptionError(`${where}${message}`)
  if (resolved.retries > MAX_RETRIES) {
    throw conflict(`Option 'retries' must be at most ${MAX_RETRIES}, got ${resolved.retries}`)
  }
  if (jitterOption !== undefined && jitterOption > 0 && maxConnectionAge === 0) {
    throw conflict(`Option 'maxConnectionAgeJitter' (${jitterOption}) has no effect without 'maxConnectionAge'`)
  }
  if (resolved.maxConnectionAgeJitter > maxConnectionAge) {
    throw conflict(
      `Option 'maxConnectionAgeJitter' (${resolved.maxConnectionAgeJitter}) must not be larger than 'maxConnectionAge' (${maxConnectionAge})`,
    )
  }
  if (resolved.idleTimeout > 0 && maxConnectionAge > 0 && resolved.idleTimeout >= maxConnectionAge) {
    throw conflict(
      `Option 'idleTimeout' (${resolved.idleTimeout}) must be shorter than 'maxConnectionAge' (${maxConnectionAge}), or it never takes effect`,
    )
  }
  const keepAlive = resolved.keepAlive
  if (keepAlive && keepAlive.interval > 0 && keepAlive.timeout >= keepAlive.interval) {
    throw conflict(
      `Option 'keepAlive.timeout' (${keepAlive.timeout}) must be shorter than 'keepAlive.interval' (${keepAlive.interval})`,
    )
  }
  if (resolved.reconnectBackoff.base > resolved.reconnectBackoff.max) {
    throw conflict(
      `Option 'reconnectBackoff.base' (${resolved.reconnectBackoff.base}) must not be larger than 'reconnectBackoff.max' (${resolved.reconnectBackoff.max})`,
    )
  }
  const ejection = resolved.outlierDetection
  if (ejection && ejection.baseEjectionTime > ejection.maxEjectionTime) {
    throw conflict(
      `Option 'outlierDetection.baseEjectionTime' (${ejection.baseEjectionTime}) must not be larger than 'outlierDetection.maxEjectionTime' (${ejection.maxEjectionTime})`,
    )
  }
  if (ejection && ejection.baseEjectionTime === 0) {
    throw conflict(`Option 'outlierDetection.baseEjectionTime' must be more than 0 (an ejection would end at once); 'outlierDetection: false' turns ejection off`)
  }
  return resolved
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, inner]) => inner !== undefined)) as Partial<T>
}

/** Parses an origin key (`https://host:port`) into its canonical form, or throws naming it. */
function canonicalOrigin(key: string, what = 'origin'): string {
  const url = parseHttpUrl(key)
  if (typeof url === 'string') throw new InvalidOptionError(`Invalid ${what} '${key}': ${url}`)
  if (url.username || url.password || (url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) {
    throw new InvalidOptionError(`Invalid ${what} '${key}': an origin is scheme://host[:port], without path, query or credentials`)
  }
  return url.origin
}

/** The validated configuration of a client: defaults, per-origin overrides, clock and randomness. */
export class Config {
  readonly clock: Clock
  readonly random: () => number
  readonly #resolved = new Map<string, ResolvedOptions>()

  constructor(options: ClientOptions = {}) {
    if (typeof options !== 'object' || options === null) {
      throw new InvalidOptionError(`Client options must be an object, got ${show(options)}`)
    }
    checkKeys(options, '', { ...poolOptionKinds, ...clientOnlyKinds })
    const { origins = {}, clock = realClock, random = Math.random, ...base } = options
    this.clock = clock
    this.random = random
    const defaultsForAll = resolve([base], '')
    for (const [key, override] of Object.entries(origins)) {
      const origin = canonicalOrigin(key, 'origin key in option \'origins\'')
      checkKind(`origins['${key}']`, 'object', override)
      checkKeys(override, `origins['${key}'].`, poolOptionKinds)
      this.#resolved.set(origin, resolve([base, override], `origins['${key}']: `))
    }
    this.#resolved.set('', defaultsForAll)
  }

  /** The options in force for an origin (its overrides over the client's options). */
  for(origin: string): ResolvedOptions {
    return this.#resolved.get(origin) ?? this.#resolved.get('')!
  }
}

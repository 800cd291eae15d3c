import { constants as http2Constants } from 'node:http2'
import { isIP } from 'node:net'
import {
  Dispatcher,
  Request as UndiciRequest,
  fetch as undiciFetch,
} from 'undici'
import { AsyncRequest } from './async-request.js'
import type { BodyInput } from './body.js'
import { Backoff } from './backoff.js'
import { publish } from './channels.js'
import type { TimerHandle } from './clock.js'
import { hostOf } from './dial.js'
import {
  ClientClosedError,
  ConnectError,
  InvalidArgumentError,
  ProtocolNegotiationError,
  QueueFullError,
  fromUndici,
} from './errors.js'
import { Controller, toSink, type Sink } from './handler.js'
import { Http1Fallback } from './http1.js'
import { Config, type ClientOptions, type ResolvedOptions } from './options.js'
import { Pool, type ExpiryReason, type OriginContext, type PoolEvent, type PoolHooks, type PoolState } from './pool.js'
import { Registry } from './registry.js'
import { Call, checkMethod, isCanonicalOrigin, parseOrigin, prepare } from './request.js'
import { streamResponse, type StreamResponse } from './stream-response.js'
import type { ClientStats, PoolStats } from './stats.js'

/** One of an origin's `count` pools, across its successive connections. */
interface Shard {
  readonly index: number
  /** The pool that serves this shard (connecting, open or recycling). */
  pool: Pool | undefined
  /** A replacement being connected while `pool` keeps serving (make-before-break). */
  successor: Pool | undefined
  readonly backoff: Backoff
  /** A reconnect scheduled after an unplanned loss or a failed connect. */
  reconnect: TimerHandle | undefined
}

interface Waiting {
  readonly call: Call
  timer: TimerHandle | undefined
}

/** The supervisor's record of one origin. */
interface OriginState extends OriginContext {
  readonly shards: Shard[]
  /** Every pool not yet closed, draining ones included. */
  readonly pools: Set<Pool>
  readonly queue: Waiting[]
  readonly requestsByAddress: Map<string, number>
  /** The origin has had an open connection: later losses make requests wait, not fail. */
  everOpen: boolean
  /** Set once the origin turned out to speak only HTTP/1.1: every request goes there. */
  http1: Http1Fallback | undefined
  lastRequestAt: number
  pingFactor: number
  tieBreak: number
}

/** Options of `request()`, `stream()` and `asyncRequest()`: undici's request options; the URL gives origin and path. */
export type RequestOptions = Omit<Dispatcher.RequestOptions, 'origin' | 'path' | 'method' | 'body'> & {
  /** A string, bytes, Readable, async iterable, web ReadableStream, Blob, FormData or URLSearchParams. */
  body?: BodyInput
  /** The HTTP method. Default `GET`. */
  method?: string
  /** Overrides the URL's path and query. */
  path?: string
}
/** What `request()` resolves with: `{ statusCode, headers, trailers, body }`, undici's shape. */
export type ResponseData = Dispatcher.ResponseData

const ENHANCE_YOUR_CALM = http2Constants.NGHTTP2_ENHANCE_YOUR_CALM

/** Runs a request API: undici's own argument errors become drainpipe's, and nothing throws synchronously. */
function typed<T>(run: () => Promise<T>): Promise<T> {
  try {
    return run().catch((error: unknown) => {
      throw fromUndici(error)
    })
  } catch (error) {
    return Promise.reject(fromUndici(error))
  }
}

/** undici's contract: invalid input is reported through the handler (started, then failed), never thrown. */
function reportInvalid(sink: Sink, error: Error): void {
  const controller = new Controller(() => {})
  try {
    sink.start(controller)
    sink.error(controller, error)
  } catch {
    // A handler that throws while being told of its own bad input has nowhere left to report to.
  }
}

/**
 * The dispatch options of a `request(url, options)` call. Built here rather
 * than by undici's URL-first helpers, which would parse the URL once more.
 */
function toDispatchOptions(url: string | URL, options: RequestOptions | undefined): Dispatcher.RequestOptions {
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new InvalidArgumentError(`Request options must be an object, got ${options === null ? 'null' : typeof options}`)
  }
  const { origin, path } = splitUrl(url)
  const requestOptions = options ?? {}
  const { path: pathOption, method } = requestOptions
  if (pathOption !== undefined && (typeof pathOption !== 'string' || !pathOption.startsWith('/'))) {
    const shown = typeof pathOption === 'string' ? `'${pathOption}'` : `of type ${typeof pathOption}`
    throw new InvalidArgumentError(`Invalid path option ${shown}: it must be a string starting with '/'`)
  }
  // undici would turn an empty method into GET; a method that is not a token is a mistake to report.
  const checked = method === undefined ? 'GET' : checkMethod(method)
  // Not a spread: `{ ...options, method }` when options has its own `method`
  // takes a slow path in V8 (~2.5 µs a request, more than the rest of this file).
  const dispatchOptions = Object.assign({}, requestOptions) as Dispatcher.RequestOptions
  dispatchOptions.origin = origin
  dispatchOptions.path = pathOption ?? path
  dispatchOptions.method = checked as Dispatcher.HttpMethod
  return dispatchOptions
}

// A path URL parsing would keep as it is: no percent-encoding to add, no
// dot segments to remove, no backslash, fragment, quote or empty query to rewrite.
const PLAIN_PATH = /^\/[\w\-.~!$&()*+,;=:@/?]*$/

/** A request URL as undici's `origin` and `path` (exported for the tests). */
export function splitUrl(url: string | URL): { origin: string; path: string } {
  if (typeof url === 'string') {
    // Most calls name an origin seen before, in canonical form: slice instead of parsing.
    const slash = url.indexOf('/', url.indexOf('//') + 2)
    if (slash > 0) {
      const origin = url.slice(0, slash)
      const path = url.slice(slash)
      if (isCanonicalOrigin(origin) && PLAIN_PATH.test(path) && !path.includes('/.') && !path.endsWith('?')) return { origin, path }
    }
  }
  let parsed: URL
  try {
    parsed = typeof url === 'string' ? new URL(url) : url
  } catch {
    return { origin: parseOrigin(url, 'URL'), path: '/' }
  }
  // 'localhost:8443/x' parses, as scheme 'localhost:' with origin 'null': report the URL as given.
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return { origin: parseOrigin(url, 'URL'), path: '/' }
  return { origin: parsed.origin, path: `${parsed.pathname}${parsed.search}` }
}

/**
 * The public entry and the supervisor: one per application. Starts an
 * origin's `count` pools on first use, keeps the registry of the pools that
 * may take requests, replaces pools when they age out (successor first),
 * and retries requests that were provably not processed.
 *
 * It is an undici `Dispatcher`: `undici.request`, `undici.fetch`,
 * `setGlobalDispatcher` and `compose()` with undici's interceptors work.
 */
export class Client extends Dispatcher {
  readonly #config: Config
  readonly #registry: Registry
  readonly #origins = new Map<string, OriginState>()
  readonly #totals = { recyclesOk: 0, recyclesFailed: 0, goaways: 0, pingTimeouts: 0, retries: 0 }
  #closing: Promise<void> | undefined
  #closed: (() => void) | undefined
  #destroyed = false
  readonly #hooks: PoolHooks = {
    resolve: (pool) => this.#resolve(pool),
    transitioned: (pool, from, event) => this.#transitioned(pool, from, event),
    expired: (pool, reason) => this.#expired(pool, reason),
    slotFreed: (pool) => this.#flush(this.#origins.get(pool.origin)!),
    goaway: (pool, errorCode, debug) => this.#goaway(pool, errorCode, debug),
  }

  // Made once, not per request: every call is routed, its body buffer sized and its retries counted the same way.
  readonly #routeCall = (call: Call) => this.#route(call)
  readonly #retryBufferSize = (origin: string) => this.#config.for(origin).retryBufferSize
  readonly #countRetry = () => {
    this.#totals.retries++
  }

  constructor(options: ClientOptions = {}) {
    super()
    this.#config = new Config(options)
    this.#registry = new Registry()
  }

  // ── The Dispatcher contract ────────────────────────────────────────────

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    return this.#dispatch(options, handler, undefined)
  }

  #dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler, retries: number | undefined): boolean {
    const sink = toSink(handler)
    let call: Call
    try {
      if (this.#closing) throw new ClientClosedError(this.#destroyed ? 'The client was destroyed' : 'The client is closed')
      const request = prepare(options, this.#retryBufferSize)
      call = new Call(request, sink, this.#routeCall, {
        retries: retries ?? this.#config.for(request.origin).retries,
        onRetry: this.#countRetry,
      })
    } catch (error) {
      reportInvalid(sink, error as Error)
      return false
    }
    call.start()
    return true
  }

  // ── Request APIs ───────────────────────────────────────────────────────

  /**
   * Sends a request and resolves with `{ statusCode, headers, trailers, body }`;
   * `body` has `text()`, `json()`, `arrayBuffer()` and is async iterable.
   * Requests that were provably not processed are retried transparently.
   */
  override request(url: string | URL, options?: RequestOptions): Promise<ResponseData>
  override request(options: Dispatcher.RequestOptions): Promise<ResponseData>
  override request(url: string | URL | Dispatcher.RequestOptions, options?: RequestOptions): Promise<ResponseData> {
    return typed(() => {
      return super.request(typeof url === 'string' || url instanceof URL ? toDispatchOptions(url, options) : url)
    })
  }

  /**
   * The response as it arrives: status and headers, then the body as an
   * async iterable, trailers when it ends. Retried transparently only
   * before the first byte reaches the caller. With a `factory`, undici's
   * `stream()` shape: the body is written to the Writable it returns.
   */
  override stream(url: string | URL, options?: RequestOptions): Promise<StreamResponse>
  override stream(url: string | URL, options: RequestOptions, factory: Dispatcher.StreamFactory): Promise<Dispatcher.StreamData>
  override stream(options: Dispatcher.RequestOptions, factory: Dispatcher.StreamFactory): Promise<Dispatcher.StreamData>
  override stream(
    url: string | URL | Dispatcher.RequestOptions,
    options?: RequestOptions | Dispatcher.StreamFactory,
    factory?: Dispatcher.StreamFactory,
  ): Promise<StreamResponse | Dispatcher.StreamData> {
    return typed<StreamResponse | Dispatcher.StreamData>(() => {
      if (typeof url !== 'string' && !(url instanceof URL)) return super.stream(url, options as Dispatcher.StreamFactory)
      const dispatchOptions = toDispatchOptions(url, options as RequestOptions | undefined)
      if (factory) return super.stream(dispatchOptions, factory)
      return streamResponse(super.request(dispatchOptions))
    })
  }

  /** WHATWG fetch over drainpipe (undici's fetch with this client as dispatcher). */
  fetch(input: FetchInput, init: Parameters<typeof undiciFetch>[1] = {}): ReturnType<typeof undiciFetch> {
    if (input instanceof UndiciRequest || !isRequestLike(input)) {
      return undiciFetch(input as Parameters<typeof undiciFetch>[0], { ...init, dispatcher: this })
    }
    // A Request from another fetch implementation (Node's global one, msw's bypass()):
    // undici only recognises its own class (nodejs/undici#2155), so carry its parts over.
    const { url, method, headers, body, signal, redirect } = input
    const withBody = body !== null && method !== 'GET' && method !== 'HEAD'
    return undiciFetch(url, {
      method,
      headers: [...headers],
      signal,
      redirect,
      ...(withBody ? { body, duplex: 'half' } : {}),
      ...init,
      dispatcher: this,
    } as Parameters<typeof undiciFetch>[1])
  }

  /**
   * Starts a request and returns a handle at once; events arrive as they
   * happen. Never retried: a request the server provably did not process
   * reports a `ReadOnlyError` (`unprocessed: true`) and the caller decides.
   */
  asyncRequest(url: string | URL, options?: RequestOptions): AsyncRequest {
    const handle = new AsyncRequest()
    let dispatchOptions: Dispatcher.DispatchOptions
    try {
      dispatchOptions = toDispatchOptions(url, options) as Dispatcher.DispatchOptions
    } catch (error) {
      // Bad arguments are reported through the handle, like every other failure.
      reportInvalid(toSink(handle.handler), error as Error)
      return handle
    }
    this.#dispatch(dispatchOptions, handle.handler, 0)
    return handle
  }

  // ── Lifecycle of the client ────────────────────────────────────────────

  /** Graceful: queued and in-flight requests finish, then every connection closes with GOAWAY. */
  override close(): Promise<void>
  override close(callback: () => void): void
  override close(callback?: () => void): Promise<void> | void {
    const closing = this.#beginClose()
    for (const state of this.#origins.values()) {
      if (state.queue.length === 0) this.#shutDown(state)
    }
    this.#checkClosed()
    const done = Promise.all([closing, ...this.#http1Pools().map((http1) => http1.close())]).then(() => {})
    if (callback) void done.then(callback)
    else return done
  }

  /** Immediate: queued requests fail unprocessed, in-flight streams are cancelled. */
  override destroy(): Promise<void>
  override destroy(error: Error | null): Promise<void>
  override destroy(callback: () => void): void
  override destroy(error: Error | null, callback: () => void): void
  override destroy(errorOrCallback?: Error | null | (() => void), callback?: () => void): Promise<void> | void {
    const error = typeof errorOrCallback === 'function' ? null : (errorOrCallback ?? null)
    const done_ = typeof errorOrCallback === 'function' ? errorOrCallback : callback
    const done = this.#beginClose()
    this.#destroyed = true
    for (const state of this.#origins.values()) {
      this.#failQueue(state, new ClientClosedError('The client was destroyed', { cause: error ?? undefined }))
      this.#clearReconnects(state)
      const reason = error ?? new ClientClosedError('The client was destroyed', { unprocessed: false })
      for (const pool of [...state.pools]) pool.transition({ type: 'destroy-requested', error: reason })
    }
    this.#checkClosed()
    const all = Promise.all([done, ...this.#http1Pools().map((http1) => http1.destroy(error))]).then(() => {})
    if (done_) void all.then(done_)
    else return all
  }

  /** `await using client = new Client()`: closes gracefully at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  #http1Pools(): Http1Fallback[] {
    return [...this.#origins.values()].flatMap((state) => (state.http1 ? [state.http1] : []))
  }

  #beginClose(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      this.#closed = resolve
    })
    return this.#closing
  }

  #shutDown(state: OriginState): void {
    this.#clearReconnects(state)
    for (const pool of [...state.pools]) pool.transition({ type: 'close-requested' })
  }

  #checkClosed(): void {
    if (!this.#closing) return
    for (const state of this.#origins.values()) {
      if (state.pools.size > 0 || state.queue.length > 0) return
    }
    this.#closed?.()
  }

  #clearReconnects(state: OriginState): void {
    for (const shard of state.shards) {
      if (shard.reconnect !== undefined) this.#config.clock.clearTimeout(shard.reconnect)
      shard.reconnect = undefined
    }
  }

  // ── Observability ──────────────────────────────────────────────────────

  /** Per origin and pool: address, state, age, in-flight, served; totals of recycles, GOAWAYs, PING timeouts, retries. */
  stats(): ClientStats {
    const origins: ClientStats['origins'] = {}
    for (const [origin, state] of this.#origins) {
      const pools: PoolStats[] = [...state.pools].map((pool) => ({
        id: pool.id,
        shard: pool.shard,
        address: pool.address,
        state: pool.state.name,
        age: pool.age,
        inFlight: pool.inFlight,
        served: pool.served,
        maxConcurrentStreams: pool.maxConcurrentStreams,
      }))
      origins[origin] = {
        protocol: state.http1 ? 'http/1.1' : 'h2',
        pools,
        queued: state.queue.length,
        requestsByAddress: Object.fromEntries(state.requestsByAddress),
        pingInterval: state.pingInterval(),
      }
    }
    const totals = this.#totals
    return {
      origins,
      recycles: { ok: totals.recyclesOk, failed: totals.recyclesFailed },
      goaways: totals.goaways,
      pingTimeouts: totals.pingTimeouts,
      retries: totals.retries,
    }
  }

  // ── The supervisor ─────────────────────────────────────────────────────

  #originState(origin: string): OriginState {
    let state = this.#origins.get(origin)
    if (state !== undefined) return state
    const options: ResolvedOptions = this.#config.for(origin)
    const { clock, random } = this.#config
    state = {
      origin,
      url: new URL(origin),
      options,
      clock,
      random,
      shards: Array.from({ length: options.count }, (_, index) => ({
        index,
        pool: undefined,
        successor: undefined,
        backoff: new Backoff(options.reconnectBackoff.base, options.reconnectBackoff.max, random),
        reconnect: undefined,
      })),
      pools: new Set(),
      queue: [],
      requestsByAddress: new Map(),
      everOpen: false,
      // Plain http:// without h2c is HTTP/1.1 from the start; https:// finds out through ALPN.
      http1: origin.startsWith('http:') && !options.h2c ? new Http1Fallback(origin, options) : undefined,
      lastRequestAt: clock.now(),
      pingFactor: 1,
      tieBreak: 0,
      pingInterval() {
        return options.keepAlive ? options.keepAlive.interval * this.pingFactor : 0
      },
    }
    this.#origins.set(origin, state)
    return state
  }

  /** Sends a call to the least busy registered pool, or queues it until one has a free slot. */
  #route(call: Call): void {
    const state = this.#originState(call.request.origin)
    state.lastRequestAt = state.clock.now()
    if (state.http1) {
      state.http1.run(call)
      return
    }
    const pool = this.#registry.pick(state.origin)
    if (pool !== undefined) {
      this.#run(state, pool, call)
      return
    }
    if (this.#closing && state.pools.size === 0) {
      call.fail(new ClientClosedError())
      return
    }
    if (state.queue.length >= state.options.maxQueue) {
      call.fail(new QueueFullError(state.origin, state.options.maxQueue))
      return
    }
    const waiting: Waiting = { call, timer: undefined }
    state.queue.push(waiting)
    call.carriedBy(() => this.#unqueue(state, waiting))
    // After the origin was up, a request waits out a reconnect, but not forever.
    if (state.everOpen && this.#registry.pools(state.origin).length === 0) {
      const { connectTimeout } = state.options
      if (connectTimeout > 0) {
        waiting.timer = state.clock.setTimeout(() => {
          this.#unqueue(state, waiting)
          call.fail(new ConnectError(`No usable connection to ${state.origin} within ${connectTimeout} ms (connectTimeout)`))
        }, connectTimeout)
      }
    }
    this.#ensureShards(state)
  }

  #run(state: OriginState, pool: Pool, call: Call): void {
    const address = pool.address ?? ''
    state.requestsByAddress.set(address, (state.requestsByAddress.get(address) ?? 0) + 1)
    pool.run(call)
  }

  #unqueue(state: OriginState, waiting: Waiting): void {
    const index = state.queue.indexOf(waiting)
    if (index !== -1) state.queue.splice(index, 1)
    if (waiting.timer !== undefined) state.clock.clearTimeout(waiting.timer)
    if (this.#closing) this.#afterQueueChange(state)
  }

  /** Hands queued calls to pools with free slots, in order. */
  #flush(state: OriginState): void {
    while (state.queue.length > 0) {
      const pool = this.#registry.pick(state.origin)
      if (pool === undefined) break
      const waiting = state.queue.shift()!
      if (waiting.timer !== undefined) state.clock.clearTimeout(waiting.timer)
      this.#run(state, pool, waiting.call)
    }
    if (this.#closing) this.#afterQueueChange(state)
  }

  #afterQueueChange(state: OriginState): void {
    if (state.queue.length === 0) this.#shutDown(state)
    this.#checkClosed()
  }

  #failQueue(state: OriginState, error: Error): void {
    for (const call of takeQueue(state)) call.fail(error)
  }

  /** Starts a pool for every shard that has none (first use, or after an idle close). */
  #ensureShards(state: OriginState): void {
    if (this.#destroyed) return
    for (const shard of state.shards) {
      if (shard.pool === undefined && shard.successor === undefined && shard.reconnect === undefined) {
        this.#startPool(state, shard, false)
      }
    }
  }

  #startPool(state: OriginState, shard: Shard, asSuccessor: boolean, replaces?: Pool): void {
    const pool = new Pool(state, shard.index, this.#hooks, replaces)
    state.pools.add(pool)
    if (asSuccessor) shard.successor = pool
    else shard.pool = pool
  }

  #scheduleReconnect(state: OriginState, shard: Shard): void {
    const delay = shard.backoff.next()
    shard.reconnect = state.clock.setTimeout(() => {
      shard.reconnect = undefined
      if (!this.#closing && shard.pool === undefined && shard.successor === undefined) this.#startPool(state, shard, false)
    }, delay)
  }

  /** A fresh lookup for every pool start; connect to the address with the fewest pools of this origin. */
  async #resolve(pool: Pool): Promise<string> {
    const state = this.#origins.get(pool.origin)!
    const host = hostOf(state.url)
    if (isIP(host)) return host
    const addresses = await lookupAll(state.options.lookup, host)
    this.#evictRemoved(state, addresses)
    const counts = new Map(addresses.map((address) => [address, 0]))
    for (const other of state.pools) {
      if (other === pool || other.address === undefined) continue
      // Pools being replaced are leaving: their successors are what the spread is made of.
      const name = other.state.name
      if (name === 'recycling' || name === 'draining' || name === 'closed') continue
      const count = counts.get(other.address)
      if (count !== undefined) counts.set(other.address, count + 1)
    }
    const fewest = Math.min(...counts.values())
    const candidates = addresses.filter((address) => counts.get(address) === fewest)
    const chosen = candidates[state.tieBreak++ % candidates.length]!
    // Claimed now, so pools resolving at the same moment spread out.
    pool.address = chosen
    return chosen
  }

  /** Pools on addresses that left DNS are recycled now, not at their full age. */
  #evictRemoved(state: OriginState, addresses: string[]): void {
    for (const shard of state.shards) {
      const pool = shard.pool
      if (pool?.address !== undefined && !addresses.includes(pool.address)) this.#expired(pool, 'address-removed')
    }
  }

  #expired(pool: Pool, reason: ExpiryReason): void {
    const state = this.#origins.get(pool.origin)!
    const shard = state.shards[pool.shard]!
    if (this.#closing || shard.pool !== pool || shard.successor !== undefined || pool.state.name !== 'open') return
    const age = state.options.maxConnectionAge
    const idle =
      (reason === 'age' || reason === 'cooldown') &&
      age > 0 &&
      state.queue.length === 0 &&
      state.clock.now() - state.lastRequestAt >= age &&
      [...state.pools].every((other) => other.inFlight === 0)
    if (idle) {
      // No request for a whole age: close without a successor; the next request connects afresh.
      pool.transition({ type: 'origin-idle' })
      return
    }
    pool.transition({ type: 'recycle-started' })
    this.#startPool(state, shard, true, pool)
  }

  #goaway(pool: Pool, errorCode: number, debug: string): void {
    const state = this.#origins.get(pool.origin)!
    this.#totals.goaways++
    if (errorCode === ENHANCE_YOUR_CALM && debug.includes('too_many_pings')) {
      state.pingFactor *= 2
      const interval = state.pingInterval()
      publish('drainpipe:pool:ping-backoff', () => ({ ...pool.info(), interval }))
    }
  }

  #transitioned(pool: Pool, from: PoolState, event: PoolEvent): void {
    const state = this.#origins.get(pool.origin)!
    const shard = state.shards[pool.shard]!
    const to = pool.state
    switch (to.name) {
      case 'open':
        if (from.name === 'connecting') this.#opened(state, shard, pool)
        return
      case 'draining':
        this.#registry.deregister(pool)
        if (shard.pool === pool) {
          shard.pool = undefined
          // A server GOAWAY is replaced at once; idle closes wait for the next request.
          if (event.type === 'goaway-received') {
            this.#forgiveIfLongLived(shard, pool)
            if (shard.successor === undefined && !this.#closing) this.#startPool(state, shard, false, pool)
          }
        }
        return
      case 'closed':
        this.#registry.deregister(pool)
        state.pools.delete(pool)
        if (from.name === 'connecting') this.#connectFailed(state, shard, pool, to.error)
        else if (shard.pool === pool) this.#lost(state, shard, pool, event)
        if (this.#closing) this.#checkClosed()
        return
      default:
        return
    }
  }

  #opened(state: OriginState, shard: Shard, pool: Pool): void {
    state.everOpen = true
    this.#registry.register(pool)
    if (shard.successor === pool) {
      shard.successor = undefined
      const predecessor = shard.pool
      shard.pool = pool
      if (predecessor !== undefined) {
        this.#totals.recyclesOk++
        publish('drainpipe:pool:recycle', () => ({ ...predecessor.info(), result: 'ok', reason: 'age', successor: pool.id }))
        predecessor.transition({ type: 'successor-ready' })
      }
    }
    if (this.#closing && state.queue.length === 0) {
      pool.transition({ type: 'close-requested' })
      return
    }
    this.#flush(state)
  }

  #connectFailed(state: OriginState, shard: Shard, pool: Pool, error: Error | undefined): void {
    const reason = error ?? new ConnectError(`Could not connect to ${state.origin}`)
    if (reason instanceof ProtocolNegotiationError && reason.protocol === 'http/1.1' && !state.everOpen) {
      this.#fallBackToHttp1(state)
      return
    }
    if (shard.successor === pool) {
      // Best effort: the old pool keeps serving and tries again after the cooldown.
      shard.successor = undefined
      this.#totals.recyclesFailed++
      const predecessor = shard.pool
      if (predecessor !== undefined) {
        publish('drainpipe:pool:recycle', () => ({ ...predecessor.info(), result: 'failed', reason: reason.message, error: reason }))
        predecessor.transition({ type: 'recycle-failed', error: reason })
      } else {
        this.#scheduleReconnect(state, shard)
      }
      return
    }
    if (shard.pool !== pool) return
    shard.pool = undefined
    const anyAlive = state.shards.some((other) => other.pool !== undefined || other.successor !== undefined)
    if (this.#closing || (!state.everOpen && !anyAlive)) {
      // Nothing ever answered (or we are closing): report at once, as undici would.
      this.#failQueue(state, reason)
      if (this.#closing) this.#checkClosed()
      return
    }
    if (state.queue.length > 0 || this.#registry.pools(state.origin).length > 0) this.#scheduleReconnect(state, shard)
  }

  /** The origin speaks only HTTP/1.1: undici's Pool serves it from now on, queued requests included. */
  #fallBackToHttp1(state: OriginState): void {
    for (const shard of state.shards) shard.pool = shard.successor = undefined
    this.#clearReconnects(state)
    if (state.http1) return
    const http1 = new Http1Fallback(state.origin, state.options)
    state.http1 = http1
    for (const call of takeQueue(state)) http1.run(call)
    if (this.#closing) this.#checkClosed()
  }

  #lost(state: OriginState, shard: Shard, pool: Pool, event: PoolEvent): void {
    shard.pool = undefined
    if (event.type === 'ping-timeout') this.#totals.pingTimeouts++
    this.#forgiveIfLongLived(shard, pool)
    if (!this.#closing && shard.successor === undefined) this.#scheduleReconnect(state, shard)
  }

  /** One fault after a long healthy life does not inherit the delays of earlier faults. */
  #forgiveIfLongLived(shard: Shard, pool: Pool): void {
    if (pool.age >= shard.backoff.window) shard.backoff.reset()
  }
}

/** What `fetch()` accepts: a URL, undici's Request, or any WHATWG Request (Node's global one included). */
export type FetchInput = Parameters<typeof undiciFetch>[0] | globalThis.Request

function isRequestLike(input: unknown): input is globalThis.Request {
  return (
    typeof input === 'object' &&
    input !== null &&
    typeof (input as Request).url === 'string' &&
    typeof (input as Request).method === 'string' &&
    typeof (input as Request).headers?.forEach === 'function'
  )
}

/** Empties an origin's queue, stopping the waits' connect timers: the calls, in order. */
function takeQueue(state: OriginState): Call[] {
  return state.queue.splice(0).map((waiting) => {
    if (waiting.timer !== undefined) state.clock.clearTimeout(waiting.timer)
    return waiting.call
  })
}

function lookupAll(lookup: ResolvedOptions['lookup'], host: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    try {
      lookup(host, { all: true }, (error, addresses) => {
        if (error) {
          reject(new ConnectError(`DNS lookup of '${host}' failed: ${error.code ?? error.message}`, { cause: error }))
        } else {
          const list = typeof addresses === 'string' ? [addresses] : Array.isArray(addresses) ? addresses.map((entry) => entry.address) : []
          if (list.length === 0) reject(new ConnectError(`DNS lookup of '${host}' returned no addresses`))
          else resolve([...new Set(list)])
        }
      })
    } catch (error) {
      reject(new ConnectError(`DNS lookup of '${host}' threw: ${(error as Error).message}`, { cause: error }))
    }
  })
}

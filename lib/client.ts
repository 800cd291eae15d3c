import { Dispatcher } from 'undici'
import { AsyncRequest } from './async-request.js'
import { Call } from './call.js'
import { ClientClosedError, fromUndici } from './errors.js'
import { fetchThrough, type FetchInit, type FetchInput } from './fetch.js'
import { Controller, toSink, type Sink } from './handler.js'
import { kEngine, type Engine } from './engine.js'
import { nodeEngine } from './node-engine.js'
import { Config, type ClientOptions, type EngineName } from './options.js'
import { Origin, type Totals } from './origin.js'
import { prepare, toDispatchOptions, type RequestOptions } from './request.js'
import { streamResponse, type StreamResponse } from './stream-response.js'
import type { ClientStats } from './stats.js'
import { wireEngine } from './wire/connection.js'

const engines: Record<EngineName, Engine> = { wire: wireEngine, node: nodeEngine }

/** What `request()` resolves with: `{ statusCode, headers, trailers, body }`, undici's shape. */
export type ResponseData = Dispatcher.ResponseData

/** Runs a request API so that nothing throws synchronously and undici's own argument errors come out as drainpipe's. */
function asDrainpipeErrors<T>(run: () => Promise<T>): Promise<T> {
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
 * The public entry: one per application. Each origin it is asked for gets
 * an `Origin` (its queue, its `count` shards of successive connections, the
 * pick); the client routes calls there, retries the ones that were provably
 * not processed, and closes everything on `close()`/`destroy()`.
 *
 * It is an undici `Dispatcher`: `undici.request`, `undici.fetch`,
 * `setGlobalDispatcher` and `compose()` with undici's interceptors work.
 */
export class Client extends Dispatcher {
  readonly #config: Config
  readonly #origins = new Map<string, Origin>()
  readonly #totals: Totals = { recyclesOk: 0, recyclesFailed: 0, goaways: 0, pingTimeouts: 0, retries: 0, ejections: 0 }
  #closing: Promise<void> | undefined
  #destroyed = false
  /** An engine that replaces the one the options name (the simulator's). */
  readonly #engine: Engine | undefined

  // Made once, not per request: every call is routed, its body buffer sized and its retries counted the same way.
  readonly #routeCall = (call: Call) => this.#origin(call.request.origin).route(call)
  readonly #retryBufferSize = (origin: string) => this.#config.for(origin).retryBufferSize
  readonly #countRetry = () => {
    this.#totals.retries++
  }

  constructor(options: ClientOptions = {}) {
    super()
    this.#config = new Config(options)
    // The repository's own tools (the fleet simulator) put an engine of theirs under a symbol no user sees.
    this.#engine = (options as { [kEngine]?: Engine })[kEngine]
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
    return asDrainpipeErrors(() => {
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
    return asDrainpipeErrors<StreamResponse | Dispatcher.StreamData>(() => {
      if (typeof url !== 'string' && !(url instanceof URL)) return super.stream(url, options as Dispatcher.StreamFactory)
      const dispatchOptions = toDispatchOptions(url, options as RequestOptions | undefined)
      if (factory) return super.stream(dispatchOptions, factory)
      return streamResponse(super.request(dispatchOptions))
    })
  }

  /** WHATWG fetch over drainpipe (undici's fetch with this client as dispatcher). */
  fetch(input: FetchInput, init: FetchInit = {}): ReturnType<typeof fetchThrough> {
    return fetchThrough(this, input, init)
  }

  /**
   * Starts a request and returns a handle at once; events arrive as they
   * happen. Never retried: a request the server provably did not process
   * reports its error (`ReadOnlyError`, `RefusedStreamError`, with
   * `unprocessed: true`) and the caller decides.
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
    this.#closing ??= Promise.all([...this.#origins.values()].map((origin) => origin.close())).then(() => {})
    if (callback) void this.#closing.then(callback)
    else return this.#closing
  }

  /** Immediate: queued requests fail unprocessed, in-flight streams are cancelled. */
  override destroy(): Promise<void>
  override destroy(error: Error | null): Promise<void>
  override destroy(callback: () => void): void
  override destroy(error: Error | null, callback: () => void): void
  override destroy(errorOrCallback?: Error | null | (() => void), callback?: () => void): Promise<void> | void {
    const error = typeof errorOrCallback === 'function' ? null : (errorOrCallback ?? null)
    const done = typeof errorOrCallback === 'function' ? errorOrCallback : callback
    this.#destroyed = true
    const destroyed = Promise.all([...this.#origins.values()].map((origin) => origin.destroy(error))).then(() => {})
    this.#closing ??= destroyed
    if (done) void destroyed.then(done)
    else return destroyed
  }

  /** `await using client = new Client()`: closes gracefully at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  // ── Observability ──────────────────────────────────────────────────────

  /** Per origin and pool: address, state, age, in-flight, served; totals of recycles, GOAWAYs, PING timeouts, retries. */
  stats(): ClientStats {
    const origins: ClientStats['origins'] = {}
    for (const [name, origin] of this.#origins) origins[name] = origin.stats()
    const totals = this.#totals
    return {
      origins,
      recycles: { ok: totals.recyclesOk, failed: totals.recyclesFailed },
      goaways: totals.goaways,
      pingTimeouts: totals.pingTimeouts,
      retries: totals.retries,
      ejections: totals.ejections,
    }
  }

  #origin(name: string): Origin {
    let origin = this.#origins.get(name)
    if (origin === undefined) {
      const { clock, random } = this.#config
      const options = this.#config.for(name)
      origin = new Origin(name, options, clock, random, this.#engine ?? engines[options.engine], this.#totals)
      this.#origins.set(name, origin)
    }
    return origin
  }
}

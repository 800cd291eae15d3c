/**
 * `drainpipe-http2/testing`: answer drainpipe's own `request()`, `stream()` and
 * `fetch()` with msw request handlers in tests.
 *
 * msw's `setupServer` intercepts `globalThis.fetch` and `node:http`, but
 * drainpipe speaks HTTP/2 through `node:http2`, which msw does not see. This
 * module puts msw in front of drainpipe's dispatcher instead: every request is
 * turned into a WHATWG `Request`, given to msw's `getResponse()`, and the
 * mocked `Response` is played back to the caller's handler. Requests no
 * handler answers, `passthrough()` and `bypass()` requests go to the real
 * client (or fail, per `onUnhandledRequest`).
 *
 * Requires the optional peer dependency `msw` (2.x).
 *
 * @module drainpipe-http2/testing
 */
import { getResponse, type RequestHandler } from 'msw'
import type { Dispatcher } from 'undici'
import { Client } from './client.js'
import { DrainpipeError, RequestAbortedError } from './errors.js'
import { Controller, toSink, type ResponseHeaders, type Sink } from './handler.js'
import type { ClientOptions } from './options.js'

/** What to do with a request no msw handler answers. `'warn'` bypasses with a console warning, as msw's default does. */
export type UnhandledRequestStrategy = 'bypass' | 'warn' | 'error'

/** Anything that lists msw handlers on demand, such as an msw `setupServer()` server. */
export interface MswHandlerSource {
  /** The handlers in force now (`server.use()` overrides first). */
  listHandlers(): ReadonlyArray<object>
}

/** Options of {@link createTestClient} and {@link mswInterceptor}. */
export interface MswOptions {
  /**
   * The msw request handlers, or anything with `listHandlers()` (an msw
   * `setupServer()` server), read on every request so `server.use()`
   * overrides and `resetHandlers()` apply.
   */
  handlers: ReadonlyArray<RequestHandler> | MswHandlerSource
  /** Default `'error'`: the request fails with a `DrainpipeError` coded `DRAINPIPE_MSW_UNHANDLED`. */
  onUnhandledRequest?: UnhandledRequestStrategy
}

/**
 * An undici interceptor that answers requests from msw handlers and passes
 * the rest on. Use it on any dispatcher: `client.compose(mswInterceptor({ handlers }))`.
 * (A composed dispatcher has undici's `request()`/`fetch()` shapes; for
 * drainpipe's own methods use {@link createTestClient}.)
 */
export function mswInterceptor(options: MswOptions | ReadonlyArray<RequestHandler>): Dispatcher.DispatcherComposeInterceptor {
  const { handlers, onUnhandledRequest = 'error' } = Array.isArray(options) ? { handlers: options as ReadonlyArray<RequestHandler> } : (options as MswOptions)
  return (next) => (opts, handler) => {
    // Read now, in the caller's async context (msw's server.boundary() relies on it).
    const current = 'listHandlers' in handlers ? handlers.listHandlers().filter(isRequestHandler) : [...handlers]
    void answer(opts, handler, next, current, onUnhandledRequest)
    return true
  }
}

/**
 * A drainpipe `Client` whose requests are first offered to msw handlers:
 * `request()`, `stream()`, `fetch()` and `dispatch()` are answered by the
 * handlers; unhandled, `passthrough()` and `bypass()` requests go out for
 * real (with `onUnhandledRequest: 'bypass' | 'warn'`). A resolver that
 * throws fails the request with its error (msw's `setupServer` answers 500);
 * `HttpResponse.error()` fails it with a `TypeError`. Mocked requests do not
 * appear in `stats()`. `asyncRequest()` is not intercepted.
 *
 * @example
 * const client = createTestClient({ handlers: [http.get('https://api.test/user', () => HttpResponse.json({ id: 1 }))] })
 * const { body } = await client.request('https://api.test/user')
 * expect(await body.json()).toEqual({ id: 1 })
 */
export function createTestClient(options: MswOptions & ClientOptions): Client {
  const { handlers, onUnhandledRequest, ...clientOptions } = options
  return new MswClient({ handlers, onUnhandledRequest }, clientOptions)
}

class MswClient extends Client {
  readonly #dispatch: Dispatcher['dispatch']

  constructor(msw: MswOptions, options: ClientOptions) {
    super(options)
    this.#dispatch = mswInterceptor(msw)((opts, handler) => super.dispatch(opts, handler))
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    return this.#dispatch(opts, handler)
  }
}

function isRequestHandler(handler: object): handler is RequestHandler {
  const kind = handler as { kind?: unknown; __kind?: unknown }
  // msw ≥ 2.8 marks handlers with `kind`, earlier 2.x with `__kind`.
  return kind.kind === 'request' || kind.__kind === 'RequestHandler'
}

async function answer(
  opts: Dispatcher.DispatchOptions,
  handler: Dispatcher.DispatchHandler,
  next: Dispatcher['dispatch'],
  handlers: RequestHandler[],
  onUnhandledRequest: UnhandledRequestStrategy,
): Promise<void> {
  let outcome: { forward: Dispatcher.DispatchOptions } | { response: Response; bodyless: boolean }
  try {
    const { request, forward } = await toRequest(opts)
    const bypassed = request.headers.get('accept')?.includes('msw/passthrough') ?? false
    const response = bypassed ? undefined : await getResponse(handlers, request)
    if (bypassed) {
      outcome = { forward: withoutBypassMarker(forward) }
    } else if (isPassthrough(response)) {
      outcome = { forward }
    } else if (response === undefined) {
      const what = `${request.method} ${request.url}`
      if (onUnhandledRequest === 'error') {
        throw new DrainpipeError(`No msw handler answered ${what} (onUnhandledRequest: 'error')`, 'DRAINPIPE_MSW_UNHANDLED')
      }
      if (onUnhandledRequest === 'warn') console.warn(`[drainpipe-http2/testing] No msw handler answered ${what}; sending it for real`)
      outcome = { forward }
    } else {
      outcome = { response, bodyless: request.method === 'HEAD' || response.status === 204 || response.status === 304 }
    }
  } catch (error) {
    new Playback(toSink(handler)).fail(error as Error)
    return
  }
  if ('forward' in outcome) next(outcome.forward, handler)
  else await new Playback(toSink(handler)).play(outcome.response, outcome.bodyless)
}

/** Plays a WHATWG Response back to an undici handler (either style), with pause/resume and abort. */
class Playback {
  readonly #sink: Sink
  readonly #controller = new Controller((reason) => this.#finish(reason ?? new RequestAbortedError()))
  #reader: ReadableStreamDefaultReader<Uint8Array> | undefined
  #done = false

  constructor(sink: Sink) {
    this.#sink = sink
  }

  fail(error: Error): void {
    if (this.#guard(() => this.#sink.start(this.#controller))) this.#finish(error)
  }

  async play(response: Response, bodyless: boolean): Promise<void> {
    if (response.type === 'error') {
      this.fail(new TypeError('Network error: an msw handler returned Response.error()'))
      return
    }
    this.#reader = bodyless ? undefined : response.body?.getReader()
    const controller = this.#controller
    if (!this.#guard(() => this.#sink.start(controller))) return
    if (!this.#guard(() => this.#sink.response(controller, response.status, headersOf(response.headers), response.statusText))) return
    try {
      while (this.#reader && !this.#done) {
        if (controller.paused) await new Promise<void>((resume) => (controller.onResume = resume))
        if (this.#done) return
        const { value, done } = await this.#reader.read()
        if (done || this.#done) break
        if (!this.#guard(() => this.#sink.data(controller, Buffer.from(value.buffer, value.byteOffset, value.byteLength)))) return
      }
    } catch (error) {
      this.#finish(error as Error)
      return
    }
    if (this.#done) return
    this.#done = true
    this.#guard(() => this.#sink.complete(controller, {}))
  }

  #finish(error: Error): void {
    if (this.#done) return
    this.#done = true
    void this.#reader?.cancel(error).catch(() => {})
    this.#controller.onResume?.()
    try {
      this.#sink.error(this.#controller, error)
    } catch {
      // Nowhere left to report to.
    }
  }

  /** A handler callback that throws aborts its own request, as in the real client. */
  #guard(callback: () => void): boolean {
    try {
      callback()
    } catch (error) {
      this.#controller.abort(error instanceof Error ? error : new Error(String(error)))
    }
    return !this.#done
  }
}

/**
 * Dispatch options as a WHATWG Request, and the options to send for real:
 * a streamed body is read once into a Buffer, used by both.
 */
async function toRequest(opts: Dispatcher.DispatchOptions): Promise<{ request: Request; forward: Dispatcher.DispatchOptions }> {
  const url = new URL(`${new URL(String(opts.origin)).origin}${opts.path}`)
  const query = (opts as { query?: Record<string, unknown> }).query
  for (const [name, value] of Object.entries(query ?? {})) {
    for (const item of Array.isArray(value) ? value : [value]) if (item != null) url.searchParams.append(name, String(item))
  }
  const body = await replayableBody(opts.body)
  const forward = body === opts.body ? opts : { ...opts, body: body as Dispatcher.DispatchOptions['body'] }
  const request = new Request(url, { method: opts.method, headers: headersFrom(opts.headers), body: body ?? null })
  return { request, forward }
}

async function replayableBody(body: unknown): Promise<BodyInit | undefined> {
  if (body === null || body === undefined) return undefined
  if (typeof body === 'string' || body instanceof Uint8Array || body instanceof ArrayBuffer) return body as BodyInit
  if (body instanceof Blob || body instanceof FormData || body instanceof URLSearchParams) return body
  if (typeof (body as ReadableStream).getReader === 'function' || Symbol.asyncIterator in (body as object)) {
    const chunks: Buffer[] = []
    for await (const chunk of body as AsyncIterable<Uint8Array | string>) chunks.push(Buffer.from(chunk))
    return Buffer.concat(chunks)
  }
  throw new TypeError(`Unsupported request body type: ${Object.prototype.toString.call(body)}`)
}

/** Request headers in any undici form (object, flat array, pairs, iterable) as WHATWG Headers. */
function headersFrom(input: unknown): Headers {
  const headers = new Headers()
  const add = (name: unknown, value: unknown) => {
    if (value === undefined || value === null) return
    for (const item of Array.isArray(value) ? value : [value]) headers.append(text(name), text(item))
  }
  if (input === null || input === undefined) return headers
  if (Array.isArray(input) && !Array.isArray(input[0])) {
    for (let i = 0; i < input.length; i += 2) add(input[i], input[i + 1])
  } else if (Symbol.iterator in (input as object)) {
    for (const [name, value] of input as Iterable<[unknown, unknown]>) add(name, value)
  } else {
    for (const [name, value] of Object.entries(input as object)) add(name, value)
  }
  return headers
}

const text = (value: unknown): string => (Buffer.isBuffer(value) ? value.toString('latin1') : String(value))

function headersOf(headers: Headers): ResponseHeaders {
  const result: ResponseHeaders = {}
  // set-cookie is visited once per cookie, everything else once per name.
  headers.forEach((value, name) => {
    const existing = result[name]
    result[name] = existing === undefined ? value : [...(Array.isArray(existing) ? existing : [existing]), value]
  })
  return result
}

const isPassthrough = (response: Response | undefined): boolean =>
  response?.status === 302 && response.headers.get('x-msw-intention') === 'passthrough'

/** `bypass()` marks a request with `accept: msw/passthrough`; the real server should not see it. */
function withoutBypassMarker(opts: Dispatcher.DispatchOptions): Dispatcher.DispatchOptions {
  const headers = headersFrom(opts.headers)
  const accept = headers.get('accept')!.replace(/(,\s*)?msw\/passthrough/, '').replace(/^,\s*/, '')
  if (accept) headers.set('accept', accept)
  else headers.delete('accept')
  const record: Record<string, string> = {}
  headers.forEach((value, name) => (record[name] = value))
  return { ...opts, headers: record }
}

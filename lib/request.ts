import type { OutgoingHttpHeaders } from 'node:http2'
import type { Dispatcher } from 'undici'
import pRetry from 'p-retry'
import { RequestBody, type BodyInput } from './body.js'
import { DrainpipeError, InvalidArgumentError, InvalidHeaderError, ReadOnlyError, RefusedStreamError, RequestAbortedError, shown } from './errors.js'
import { Controller, type ResponseHeaders, type Sink } from './handler.js'
import { toHttp2Headers, type HeadersInput } from './headers.js'
import { publish } from './channels.js'

/** A request validated and normalised once, sendable any number of times. */
export interface PreparedRequest {
  origin: string
  method: string
  path: string
  headers: OutgoingHttpHeaders
  authority: string | undefined
  body: RequestBody
  headersTimeout: number | undefined
  bodyTimeout: number | undefined
}

const METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
// Request targets: visible ASCII only, so nothing can be smuggled into :path.
const PATH = /^[\x21-\x7e]*$/

export function checkMethod(method: unknown): string {
  if (typeof method !== 'string' || !METHOD.test(method)) throw new InvalidArgumentError(`Invalid method '${shown(method)}'`)
  return method
}

// Requests name the same few origins over and over: parse each once.
const parsedOrigins = new Map<string, string>()
const MAX_PARSED_ORIGINS = 1024

/** An origin (`https://host:port`) from a URL or origin; `what` names the argument in errors ('origin', 'URL'). */
export function parseOrigin(origin: unknown, what = 'origin'): string {
  if (typeof origin === 'string') {
    const known = parsedOrigins.get(origin)
    if (known !== undefined) return known
    const parsed = parseOriginOnce(origin, what)
    if (parsedOrigins.size >= MAX_PARSED_ORIGINS) parsedOrigins.clear()
    parsedOrigins.set(origin, parsed)
    return parsed
  }
  return parseOriginOnce(origin, what)
}

/** Whether `origin` is an origin already parsed and in its canonical form (as `URL#origin` writes it). */
export function isCanonicalOrigin(origin: string): boolean {
  return parsedOrigins.get(origin) === origin
}

/**
 * The advice for a URL written without its scheme, or undefined if it has
 * one (or is no URL even with one). 'api.example/x' is no URL at all, but
 * 'localhost:8443/x' parses as one of scheme 'localhost:' (a port where the
 * path should start tells).
 */
export function missingScheme(text: string): string | undefined {
  if (text === '' || text.includes('://')) return undefined
  const scheme = /^[a-z][a-z\d+.-]*:/i.exec(text)?.[0]
  if (scheme !== undefined && !/^\d/.test(text.slice(scheme.length))) return undefined
  const suggestion = `${text.startsWith('//') ? 'https:' : 'https://'}${text}`
  if (!URL.canParse(suggestion)) return undefined
  return `the scheme is missing (did you mean '${suggestion}'? http:// for a server without TLS)`
}

function parseOriginOnce(origin: unknown, what: string): string {
  if (typeof origin !== 'string' && !(origin instanceof URL)) {
    throw new InvalidArgumentError(`Invalid ${what}: expected a string or URL, got ${origin === null ? 'null' : typeof origin}`)
  }
  const text = shown(origin)
  let url: URL
  try {
    url = new URL(origin)
  } catch (cause) {
    throw new InvalidArgumentError(`Invalid ${what} '${text}': ${missingScheme(text) ?? 'not a URL'}`, { cause })
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new InvalidArgumentError(`Invalid ${what} '${text}': ${missingScheme(text) ?? 'the scheme must be https: or http:'}`)
  }
  return url.origin
}

function withQuery(path: string, query: Record<string, unknown> | undefined): string {
  if (!query) return path
  if (typeof query !== 'object') throw new InvalidArgumentError(`Request option 'query' must be an object, got ${typeof query}`)
  const search = new URLSearchParams()
  const asText = (key: string, value: unknown): string => {
    try {
      return String(value)
    } catch {
      throw new InvalidArgumentError(`Request option 'query': the value of '${key}' has no string form`)
    }
  }
  for (const [key, value] of Object.entries(query)) {
    if (Array.isArray(value)) for (const item of value) search.append(key, asText(key, item))
    else if (value !== undefined && value !== null) search.append(key, asText(key, value))
  }
  const text = search.toString()
  return text ? `${path}${path.includes('?') ? '&' : '?'}${text}` : path
}

function optionalDuration(name: string, value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new InvalidArgumentError(`Request option '${name}' must be a non-negative number of milliseconds, got ${shown(value)}`)
  }
  return value
}

/** Validates undici-style dispatch options; throws a typed error naming what is wrong. */
export function prepare(options: Dispatcher.DispatchOptions, retryBufferSize: (origin: string) => number): PreparedRequest {
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('Dispatch options must be an object')
  const origin = parseOrigin(options.origin)
  const method = checkMethod(options.method ?? 'GET')
  if (method === 'CONNECT' || options.upgrade) {
    throw new InvalidArgumentError(`${method === 'CONNECT' ? 'CONNECT' : 'Upgrade'} requests are not supported over HTTP/2 by drainpipe`)
  }
  const rawPath = options.path ?? '/'
  if (typeof rawPath !== 'string' || !(rawPath.startsWith('/') || rawPath === '*') || !PATH.test(rawPath)) {
    throw new InvalidArgumentError(`Invalid path '${shown(rawPath)}': it must start with '/' and contain no spaces or control characters`)
  }
  const path = withQuery(rawPath, (options as { query?: Record<string, unknown> }).query)
  const { headers, authority } = toHttp2Headers(options.headers as HeadersInput)
  const body = RequestBody.from(options.body as BodyInput, retryBufferSize(origin))
  const declared = headers['content-length']
  if (declared !== undefined && body.length !== undefined && Number(declared) !== body.length) {
    throw new InvalidHeaderError('content-length', `${declared} does not match the body's ${body.length} bytes`)
  }
  if (body.contentType !== undefined && headers['content-type'] === undefined) headers['content-type'] = body.contentType
  return {
    origin,
    method,
    path,
    headers,
    authority,
    body,
    headersTimeout: optionalDuration('headersTimeout', options.headersTimeout),
    bodyTimeout: optionalDuration('bodyTimeout', options.bodyTimeout),
  }
}

/** Whether a failure is safe to send again: the server provably never processed it. */
const isRetryable = (error: unknown): boolean => error instanceof ReadOnlyError || error instanceof RefusedStreamError

/** What a carrier (an exchange, a queue slot) does when the caller aborts. */
export type Cancel = (reason: Error) => void

/**
 * One call of `dispatch()`: a request and the caller's handler across
 * attempts. It routes the request, and when an attempt fails before any
 * response reached the caller with an error that proves the request was not
 * processed, sends it again (p-retry drives the retries). After the response
 * started, everything goes straight to the caller.
 */
export class Call {
  readonly request: PreparedRequest
  readonly controller: Controller
  readonly #sink: Sink
  readonly #route: (call: Call) => void
  readonly #retries: number
  readonly #onRetry: () => void
  #cancel: Cancel | undefined
  #responding = false
  #done = false
  #pending: { resolve: () => void; reject: (error: Error) => void } | undefined

  constructor(
    request: PreparedRequest,
    sink: Sink,
    route: (call: Call) => void,
    { retries, onRetry }: { retries: number; onRetry: () => void },
  ) {
    this.request = request
    this.#sink = sink
    this.#route = route
    this.#retries = retries
    this.#onRetry = onRetry
    this.controller = new Controller((reason) => this.#aborted(reason))
  }

  /** Hands the request to the caller's handler, then routes it. */
  start(): void {
    if (!this.#guard(() => this.#sink.start(this.controller))) return
    if (!this.#done) this.#route(this)
  }

  /** The current carrier of the request registers how to cancel it. */
  carriedBy(cancel: Cancel | undefined): void {
    this.#cancel = cancel
  }

  responseStarted(statusCode: number, headers: ResponseHeaders, statusText: string): void {
    if (this.#done) return
    this.#responding = true
    this.request.body.settle()
    this.#pending?.resolve()
    this.#pending = undefined
    this.#guard(() => this.#sink.response(this.controller, statusCode, headers, statusText))
  }

  data(chunk: Buffer): void {
    if (!this.#done) this.#guard(() => this.#sink.data(this.controller, chunk))
  }

  complete(trailers: ResponseHeaders): void {
    if (this.#done) return
    this.#done = true
    this.#cancel = undefined
    this.request.body.close()
    this.#guard(() => this.#sink.complete(this.controller, trailers))
  }

  /** The current attempt failed. Before the response started, unprocessed failures may be retried. */
  fail(error: Error): void {
    if (this.#done) return
    this.#cancel = undefined
    if (this.#pending) {
      const { reject } = this.#pending
      this.#pending = undefined
      reject(error)
    } else if (!this.#responding && this.#retries > 0 && this.#mayRetry(error)) {
      void this.#retry(error)
    } else {
      this.#deliverError(error)
    }
  }

  #mayRetry(error: unknown): boolean {
    return isRetryable(error) && this.request.body.replayable && !this.controller.aborted
  }

  async #retry(first: Error): Promise<void> {
    this.#published(first, 2)
    try {
      await pRetry(
        () =>
          new Promise<void>((resolve, reject) => {
            this.#pending = { resolve, reject }
            this.#route(this)
          }),
        {
          retries: this.#retries - 1,
          minTimeout: 0,
          shouldRetry: ({ error, attemptNumber }) => {
            const retry = this.#mayRetry(error)
            // p-retry counts its own attempts; ours include the first one made before it took over.
            if (retry) this.#published(error, attemptNumber + 2)
            return retry
          },
        },
      )
    } catch (error) {
      this.#deliverError(error as Error)
    }
  }

  #published(error: Error, attempt: number): void {
    publish('drainpipe:request:retry', () => ({
      origin: this.request.origin,
      method: this.request.method,
      path: this.request.path,
      attempt,
      reason: (error as DrainpipeError).code ?? error.name,
      error,
    }))
    this.#onRetry()
  }

  #deliverError(error: Error): void {
    if (this.#done) return
    this.#done = true
    this.request.body.close()
    try {
      this.#sink.error(this.controller, error)
    } catch {
      // A handler that throws from its error callback has nowhere left to report to.
    }
  }

  #aborted(reason: Error | null): void {
    if (this.#done) return
    const error = reason ?? new RequestAbortedError()
    const cancel = this.#cancel
    this.#cancel = undefined
    cancel?.(error)
    this.fail(error)
  }

  /** Runs a handler callback; a throwing handler aborts its own request, never the connection. */
  #guard(callback: () => void): boolean {
    try {
      callback()
      return true
    } catch (error) {
      this.controller.abort(error instanceof Error ? error : new DrainpipeError(shown(error), 'DRAINPIPE_HANDLER'))
      return false
    }
  }
}

import type { Dispatcher } from 'undici'
import { RequestBody, type BodyInput } from './body.js'
import { InvalidArgumentError, InvalidHeaderError, shown } from './errors.js'
import { TOKEN, toHttp2Headers, type HeadersInput, type RequestHeaders } from './headers.js'

/** A request validated and normalised once, sendable any number of times. */
export interface PreparedRequest {
  origin: string
  method: string
  path: string
  headers: RequestHeaders
  authority: string | undefined
  body: RequestBody
  headersTimeout: number | undefined
  bodyTimeout: number | undefined
}

// Request targets: visible ASCII only, so nothing can be smuggled into :path.
const PATH = /^[\x21-\x7e]*$/

function checkMethod(method: unknown): string {
  if (typeof method !== 'string' || !TOKEN.test(method)) throw new InvalidArgumentError(`Invalid method '${shown(method)}'`)
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
function isCanonicalOrigin(origin: string): boolean {
  return parsedOrigins.get(origin) === origin
}

/**
 * The advice for a URL written without its scheme, or undefined if it has
 * one (or is no URL even with one). 'api.example/x' is no URL at all, but
 * 'localhost:8443/x' parses as one of scheme 'localhost:' (a port where the
 * path should start tells).
 */
function missingScheme(text: string): string | undefined {
  if (text === '' || text.includes('://')) return undefined
  const scheme = /^[a-z][a-z\d+.-]*:/i.exec(text)?.[0]
  if (scheme !== undefined && !/^\d/.test(text.slice(scheme.length))) return undefined
  const suggestion = `${text.startsWith('//') ? 'https:' : 'https://'}${text}`
  if (!URL.canParse(suggestion)) return undefined
  return `the scheme is missing (did you mean '${suggestion}'? http:// for a server without TLS)`
}

/**
 * The one parser of http(s) URLs and origins, for requests and for options:
 * the URL, or what is wrong with the text (for the caller's typed error).
 */
export function parseHttpUrl(text: string | URL): URL | string {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return missingScheme(String(text)) ?? 'not a URL'
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return missingScheme(String(text)) ?? 'the scheme must be https: or http:'
  return url
}

function parseOriginOnce(origin: unknown, what: string): string {
  if (typeof origin !== 'string' && !(origin instanceof URL)) {
    throw new InvalidArgumentError(`Invalid ${what}: expected a string or URL, got ${origin === null ? 'null' : typeof origin}`)
  }
  const url = parseHttpUrl(origin)
  if (typeof url === 'string') throw new InvalidArgumentError(`Invalid ${what} '${shown(origin)}': ${url}`)
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

/** Options of `request()`, `stream()` and `asyncRequest()`: undici's request options; the URL gives origin and path. */
export type RequestOptions = Omit<Dispatcher.RequestOptions, 'origin' | 'path' | 'method' | 'body'> & {
  /** A string, bytes, Readable, async iterable, web ReadableStream, Blob, FormData or URLSearchParams. */
  body?: BodyInput
  /** The HTTP method. Default `GET`. */
  method?: string
  /** Overrides the URL's path and query. */
  path?: string
}

/**
 * The dispatch options of a `request(url, options)` call. Built here rather
 * than by undici's URL-first helpers, which would parse the URL once more.
 */
export function toDispatchOptions(url: string | URL, options: RequestOptions | undefined): Dispatcher.RequestOptions {
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new InvalidArgumentError(`Request options must be an object, got ${options === null ? 'null' : typeof options}`)
  }
  const { origin, path } = splitUrl(url)
  const requestOptions = options ?? {}
  const { path: pathOption, method } = requestOptions
  if (pathOption !== undefined && (typeof pathOption !== 'string' || !pathOption.startsWith('/'))) {
    const shownPath = typeof pathOption === 'string' ? `'${pathOption}'` : `of type ${typeof pathOption}`
    throw new InvalidArgumentError(`Invalid path option ${shownPath}: it must be a string starting with '/'`)
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

/** A request URL as undici's `origin` and `path`. */
function splitUrl(url: string | URL): { origin: string; path: string } {
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

import { InvalidHeaderError, shown } from './errors.js'

/** Request header fields as they go on the wire: lowercase names; a list only for set-cookie. */
export type RequestHeaders = Record<string, string | string[]>

/** Request headers in every shape undici accepts. */
export type HeadersInput =
  | Record<string, string | string[] | number | undefined | null>
  | (string | Buffer | string[])[]
  | Iterable<[string, string]>
  | null
  | undefined

/** RFC 9110 token characters: header names and methods. */
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
// Field values: no CR, LF or NUL anywhere (header injection), as RFC 9113 §8.2.1 requires.
const FORBIDDEN_IN_VALUE = /[\r\n\0]/
// host[:port], IPv6 literals in brackets: what :authority may carry.
const AUTHORITY = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]+)(:\d{1,5})?$/
// Values go out as latin1, one byte per character: a wider character such as
// U+010D would lose its high byte and go out as CR. Only ISO-8859-1 is let through.
const BEYOND_LATIN1 = /[^\u0000-\u00ff]/

// Connection-specific fields are forbidden in HTTP/2 (RFC 9113 §8.2.2); `te` only as "trailers".
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings'])

// Fields that may appear once (RFC 9110): two different values are a mistake to report.
const SINGLE_VALUE = new Set([
  'authorization',
  'content-encoding',
  'content-language',
  'content-length',
  'content-location',
  'content-md5',
  'content-range',
  'content-type',
  'date',
  'dnt',
  'etag',
  'expires',
  'from',
  'host',
  'if-modified-since',
  'if-range',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'range',
  'referer',
  'retry-after',
  'tk',
  'upgrade-insecure-requests',
  'user-agent',
  'x-content-type-options',
])

function* pairs(input: Exclude<HeadersInput, null | undefined>): Iterable<[unknown, unknown]> {
  if (Array.isArray(input)) {
    if (input.length > 0 && Array.isArray(input[0])) {
      for (const pair of input as unknown as unknown[][]) {
        if (!Array.isArray(pair) || pair.length !== 2) throw new InvalidHeaderError(shown(pair), 'expected [name, value] pairs')
        yield [pair[0], pair[1]]
      }
      return
    }
    if (input.length % 2 !== 0) throw new InvalidHeaderError(shown(input[input.length - 1]), 'flat header array with a name but no value')
    for (let i = 0; i < input.length; i += 2) yield [input[i], input[i + 1]]
    return
  }
  if (typeof (input as Iterable<unknown>)[Symbol.iterator] === 'function') {
    yield* input as Iterable<[unknown, unknown]>
    return
  }
  if (typeof input === 'object') {
    for (const name of Object.keys(input)) yield [name, (input as Record<string, unknown>)[name]]
    return
  }
  throw new InvalidHeaderError(shown(input), 'headers must be an object, an array or an iterable of pairs')
}

function checkedValue(name: string, value: unknown): string {
  let text: string
  if (typeof value === 'string') text = value
  else if (typeof value === 'number' && Number.isFinite(value)) text = String(value)
  else if (Buffer.isBuffer(value)) text = value.toString('latin1')
  else throw new InvalidHeaderError(name, `the value must be a string, got ${typeof value}`)
  if (FORBIDDEN_IN_VALUE.test(text)) throw new InvalidHeaderError(name, 'the value contains CR, LF or NUL')
  if (BEYOND_LATIN1.test(text)) {
    throw new InvalidHeaderError(name, 'the value has characters outside ISO-8859-1 (encode it, e.g. percent-encoding)')
  }
  return text.trim()
}

/**
 * Validates request headers and turns them into HTTP/2 header fields:
 * names lowercased, connection-specific fields dropped, `host` becomes
 * `:authority`, duplicates combined as HTTP says (cookie with "; ", lists
 * with ", ", set-cookie kept apart). Throws `InvalidHeaderError` naming the
 * header for anything that cannot be sent.
 */
export function toHttp2Headers(input: HeadersInput): { headers: RequestHeaders; authority: string | undefined } {
  // No prototype: header names such as __proto__ or constructor are plain names here.
  const headers: RequestHeaders = Object.create(null) as RequestHeaders
  let authority: string | undefined
  if (input == null) return { headers, authority }
  for (const [rawName, rawValue] of pairs(input)) {
    const name = Buffer.isBuffer(rawName) ? rawName.toString('latin1') : rawName
    if (typeof name !== 'string') throw new InvalidHeaderError(shown(name), 'the name must be a string')
    if (name.startsWith(':')) throw new InvalidHeaderError(name, 'pseudo-headers are set by drainpipe, not by the caller')
    if (!TOKEN.test(name)) throw new InvalidHeaderError(name, 'the name is not a valid HTTP token')
    if (rawValue === undefined || rawValue === null) continue
    const lower = name.toLowerCase()
    const values = Array.isArray(rawValue) ? rawValue.map((value) => checkedValue(name, value)) : [checkedValue(name, rawValue)]
    if (CONNECTION_SPECIFIC.has(lower)) continue
    if (lower === 'te') {
      if (values.every((value) => value.toLowerCase() === 'trailers')) headers.te = 'trailers'
      continue
    }
    if (lower === 'host') {
      if (values.length !== 1 || (authority !== undefined && authority !== values[0])) {
        throw new InvalidHeaderError(name, 'more than one value')
      }
      if (!AUTHORITY.test(values[0]!)) throw new InvalidHeaderError(name, `'${values[0]}' is not a host[:port]`)
      authority = values[0]
      continue
    }
    if (lower === 'content-length' && !values.every((value) => /^\d{1,15}$/.test(value))) {
      throw new InvalidHeaderError(name, 'the value must be a number of bytes')
    }
    for (const value of values) append(headers, lower, name, value)
  }
  return { headers, authority }
}

function append(headers: RequestHeaders, lower: string, name: string, value: string): void {
  const existing = headers[lower]
  if (existing === undefined) {
    headers[lower] = value
  } else if (lower === 'set-cookie') {
    headers[lower] = Array.isArray(existing) ? [...existing, value] : [String(existing), value]
  } else if (SINGLE_VALUE.has(lower)) {
    if (existing !== value) throw new InvalidHeaderError(name, `conflicting duplicate values '${existing}' and '${value}'`)
  } else {
    headers[lower] = `${existing}${lower === 'cookie' ? '; ' : ', '}${value}`
  }
}

/** undici's legacy raw form: [name, value, name, value, …] as Buffers, lists repeated. */
export function rawHeaders(headers: Record<string, string | string[]>): Buffer[] {
  const raw: Buffer[] = []
  for (const name in headers) {
    const value = headers[name]!
    if (Array.isArray(value)) {
      for (const item of value) raw.push(Buffer.from(name, 'latin1'), Buffer.from(item, 'latin1'))
    } else {
      raw.push(Buffer.from(name, 'latin1'), Buffer.from(value, 'latin1'))
    }
  }
  return raw
}

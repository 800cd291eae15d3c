/**
 * HTTP/2 field sections (RFC 9113 §8.2, §8.3): the checks a request head
 * passes before it is encoded, and the assembly and validation of a
 * response's header and trailer sections as HPACK decodes them.
 */
import type { RequestHead, ResponseHeaders } from '../engine.js'
import { InvalidHeaderError } from '../errors.js'

/** Fields that are connection-specific, forbidden in HTTP/2 (RFC 9113 §8.2.2); `te` is allowed in requests as "trailers" only. */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te'])

/**
 * Fields node:http2 keeps only the first of when repeated (its
 * `kSingleValueHeaders`): response objects must look the same whichever
 * engine built them.
 */
const SINGLE_VALUE = new Set([
  'access-control-allow-credentials',
  'access-control-max-age',
  'access-control-request-method',
  'age',
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
  'if-match',
  'if-modified-since',
  'if-none-match',
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

/** RFC 7541 §4.1: a field's size is its name's and value's octets plus 32. */
const FIELD_OVERHEAD = 32

/**
 * Why a field name is invalid in HTTP/2, or undefined: no octet in
 * 0x00-0x20, 0x41-0x5a (uppercase), 0x7f-0xff, and no colon (RFC 9113
 * §8.2.1); pseudo-headers are checked apart.
 */
function nameProblem(name: string): string | undefined {
  if (name.length === 0) return 'the name is empty'
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i)
    if (c <= 0x20 || c >= 0x7f || c === 0x3a) return 'the name has a character HTTP/2 forbids in field names'
    if (c >= 0x41 && c <= 0x5a) return 'the name has uppercase characters'
  }
  return undefined
}

/**
 * Why a field value is invalid in HTTP/2, or undefined: no NUL, CR or LF,
 * no whitespace at either end (RFC 9113 §8.2.1), and nothing beyond one
 * octet (HPACK carries octets; wider characters would be mangled).
 */
function valueProblem(value: string): string | undefined {
  const last = value.length - 1
  for (let i = 0; i <= last; i++) {
    const c = value.charCodeAt(i)
    if (c === 0 || c === 0x0a || c === 0x0d) return 'the value contains CR, LF or NUL'
    if (c > 0xff) return 'the value has characters outside ISO-8859-1'
    if ((c === 0x20 || c === 0x09) && (i === 0 || i === last)) return 'the value starts or ends with whitespace'
  }
  return undefined
}

// A method is an RFC 9110 token.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/**
 * Refuses a request head that must not go on the wire (the last line:
 * lib/headers.ts already validated what callers gave), and returns the
 * RFC 7541 §4.1 size of its header list. Throws `InvalidHeaderError`.
 */
export function checkRequestHead(head: RequestHead): number {
  if (!TOKEN.test(head.method)) throw new InvalidHeaderError(':method', `'${head.method}' is not a token`)
  const authorityProblem = head.authority.length === 0 ? 'it is empty' : valueProblem(head.authority) ?? (head.authority.includes(' ') ? 'it contains a space' : undefined)
  if (authorityProblem !== undefined) throw new InvalidHeaderError(':authority', authorityProblem)
  const pathProblem = head.path.length === 0 ? 'it is empty' : valueProblem(head.path) ?? (head.path.includes(' ') ? 'it contains a space' : undefined)
  if (pathProblem !== undefined) throw new InvalidHeaderError(':path', pathProblem)
  let size =
    4 * FIELD_OVERHEAD + 7 + head.method.length + 7 + head.scheme.length + 10 + head.authority.length + 5 + head.path.length
  const headers = head.headers
  for (const name in headers) {
    const problem = nameProblem(name)
    if (problem !== undefined) throw new InvalidHeaderError(name, problem)
    const value = headers[name]!
    if (CONNECTION_SPECIFIC.has(name)) {
      if (name !== 'te' || value !== 'trailers') throw new InvalidHeaderError(name, 'connection-specific fields are forbidden in HTTP/2 (te only as "trailers")')
    }
    if (typeof value === 'string') {
      size += checkedValueSize(name, value)
    } else {
      for (const item of value) size += checkedValueSize(name, item)
    }
    if (name === 'host' && value !== head.authority) throw new InvalidHeaderError(name, `differs from :authority '${head.authority}'`)
  }
  return size
}

function checkedValueSize(name: string, value: string): number {
  const problem = valueProblem(value)
  if (problem !== undefined) throw new InvalidHeaderError(name, problem)
  return FIELD_OVERHEAD + name.length + value.length
}

/** A limit a field section went past: the stream is reset, the connection stays. */
export type FieldLimit = 'maxHeaderListSize' | 'maxHeaderFields'

/**
 * Builds one response field section (a response head, an informational
 * head, or trailers) from HPACK's fields, checking each as RFC 9113 §8.3.2
 * and §8.1.1 require. It never throws: decoding must run to the end of the
 * block to keep HPACK's dynamic table in step, so the first problem is
 * recorded and later fields are only counted.
 */
export class ResponseFields {
  /** The `:status`, 0 when none came. */
  status = 0
  headers: ResponseHeaders = {}
  /** `content-length` as a number, -1 when absent. */
  contentLength = -1
  /** Why the section is malformed (a PROTOCOL_ERROR stream error), when it is. */
  malformed: string | undefined
  /** The limit it went past, when it did. */
  limit: FieldLimit | undefined
  /** Its RFC 7541 §4.1 size and its number of fields. */
  size = 0
  count = 0

  readonly maxListSize: number
  readonly maxFields: number
  #trailers = false
  #regularSeen = false

  /** Called for each field HPACK decodes; bound once, so no closure per block. */
  readonly field = (name: string, value: string): void => {
    this.size += name.length + value.length + FIELD_OVERHEAD
    this.count++
    if (this.malformed !== undefined || this.limit !== undefined) return
    if (this.size > this.maxListSize) this.limit = 'maxHeaderListSize'
    else if (this.count > this.maxFields) this.limit = 'maxHeaderFields'
    else if (name.charCodeAt(0) === 0x3a) this.#pseudo(name, value)
    else this.#regular(name, value)
  }

  constructor(maxListSize: number, maxFields: number) {
    this.maxListSize = maxListSize
    this.maxFields = maxFields
  }

  /** Starts a section: a response head (`trailers` false) or trailers. */
  start(trailers: boolean): void {
    this.status = 0
    this.headers = {}
    this.contentLength = -1
    this.malformed = undefined
    this.limit = undefined
    this.size = 0
    this.count = 0
    this.#trailers = trailers
    this.#regularSeen = false
  }

  #pseudo(name: string, value: string): void {
    if (this.#trailers) this.malformed = `pseudo-header ${name} in trailers`
    else if (this.#regularSeen) this.malformed = `pseudo-header ${name} after a regular field`
    else if (name !== ':status') this.malformed = `pseudo-header ${name} in a response`
    else if (this.status !== 0) this.malformed = 'more than one :status'
    else if (!/^[1-5]\d\d$/.test(value)) this.malformed = `:status '${value}' is not a 3-digit status code`
    else this.status = Number(value)
  }

  #regular(name: string, value: string): void {
    this.#regularSeen = true
    const problem = nameProblem(name) ?? valueProblem(value)
    if (problem !== undefined) {
      this.malformed = `field '${name}': ${problem}`
      return
    }
    if (CONNECTION_SPECIFIC.has(name)) {
      this.malformed = `connection-specific field '${name}'`
      return
    }
    if (name === 'content-length') {
      const length = /^\d{1,15}$/.test(value) ? Number(value) : -1
      if (length < 0) {
        this.malformed = `content-length '${value}' is not a number of octets`
        return
      }
      if (this.contentLength >= 0 && this.contentLength !== length) {
        this.malformed = `content-length given twice, ${this.contentLength} and ${length}`
        return
      }
      this.contentLength = length
    }
    const headers = this.headers
    // Own fields only: a field named constructor or __proto__ is data, not the object's machinery.
    const existing = Object.hasOwn(headers, name) ? headers[name] : undefined
    if (existing === undefined) set(headers, name, name === 'set-cookie' ? [value] : value)
    else if (name === 'set-cookie') (existing as string[]).push(value)
    else if (!SINGLE_VALUE.has(name)) set(headers, name, `${existing as string}${name === 'cookie' ? '; ' : ', '}${value}`)
  }
}

function set(headers: ResponseHeaders, name: string, value: string | string[]): void {
  if (name === '__proto__') Object.defineProperty(headers, name, { value, enumerable: true, writable: true, configurable: true })
  else headers[name] = value
}

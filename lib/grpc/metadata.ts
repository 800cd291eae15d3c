/**
 * gRPC metadata as HTTP/2 fields. Request metadata goes to drainpipe as a
 * plain object (drainpipe validates names and values); response metadata
 * stays in drainpipe's plain objects until someone asks for a `Headers`.
 *
 * Binary metadata (`-bin` names) travels base64-encoded both ways, as
 * Connect's `encodeBinaryHeader` / `decodeBinaryHeader` write and read it
 * (padded or not).
 */

/** Request fields as drainpipe's `dispatch` takes them; names lowercase. */
export type RequestFields = Record<string, string>

/** Response fields as drainpipe reports them (undici's object form): names lowercase, repeated fields as arrays. */
export type ResponseFields = Record<string, string | string[] | undefined>

/**
 * The caller's metadata (Connect's `HeadersInit`) as request fields, names
 * lowercased and repeated names joined as `Headers` would join them.
 */
export function metadataFields(header: HeadersInit, into: RequestFields): RequestFields {
  if (header instanceof Headers) {
    header.forEach((value, name) => {
      into[name] = value
    })
  } else if (Array.isArray(header)) {
    for (const [name, value] of header) add(into, name.toLowerCase(), value)
  } else {
    for (const name of Object.keys(header)) add(into, name.toLowerCase(), (header as Record<string, string>)[name]!)
  }
  return into
}

function add(fields: RequestFields, name: string, value: string): void {
  const existing = fields[name]
  fields[name] = existing === undefined ? value : `${existing}, ${value}`
}

/** Largest value gRPC allows in `grpc-timeout`: 8 digits. */
const MAX_TIMEOUT_DIGITS = 99_999_999

/** A deadline as `grpc-timeout`: the finest unit whose value fits in 8 digits, rounded up (never earlier than the client's). */
export function grpcTimeout(ms: number): string {
  const units: [number, string][] = [
    [1, 'm'],
    [1_000, 'S'],
    [60_000, 'M'],
    [3_600_000, 'H'],
  ]
  for (const [size, unit] of units) {
    const value = Math.ceil(ms / size)
    if (value <= MAX_TIMEOUT_DIGITS) return `${value}${unit}`
  }
  return `${MAX_TIMEOUT_DIGITS}H`
}

/** Response fields (drainpipe's object form) appended to a `Headers`, pseudo-headers left out. */
export function toHeaders(fields: ResponseFields, target = new Headers()): Headers {
  for (const name in fields) {
    if (name.charCodeAt(0) === 58 /* ':' */) continue
    const value = fields[name]
    if (Array.isArray(value)) for (const item of value) target.append(name, item)
    else if (value !== undefined) target.append(name, value)
  }
  return target
}

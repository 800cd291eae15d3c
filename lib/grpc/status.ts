/**
 * How a gRPC call ends: `grpc-status`, `grpc-message` and
 * `grpc-status-details-bin` in the trailers (or in the headers of a
 * trailers-only response), an HTTP status that is not 200, or a failure of
 * the stream or the connection below it.
 */
import { Http2ErrorCode } from '../engine.js'
import { Code, ConnectError } from '@connectrpc/connect'
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire'
import {
  BodyTimeoutError,
  DrainpipeError,
  HeadersTimeoutError,
  InvalidArgumentError,
  InvalidHeaderError,
  ProtocolError,
  QueueFullError,
  RequestAbortedError,
  RequestBodyError,
  isUnprocessed,
} from '../errors.js'
import { toHeaders, type ResponseFields } from './metadata.js'

/** A detail of an error as it came from the wire: the `google.protobuf.Any` of `google.rpc.Status.details`. */
interface IncomingDetail {
  type: string
  value: Uint8Array
}

const single = (value: string | string[] | undefined): string | undefined => (Array.isArray(value) ? value.join(',') : value)

/**
 * The outcome `fields` (trailers, or the headers of a trailers-only
 * response) report: `null` for OK, a `ConnectError` for any other status,
 * `undefined` when they carry no status at all. The error's metadata is
 * every field of the response (headers and trailers).
 */
export function statusOf(fields: ResponseFields, response: ResponseFields[]): ConnectError | null | undefined {
  const status = single(fields['grpc-status'])
  if (status === '0') return null
  const details = single(fields['grpc-status-details-bin'])
  if (status === undefined && details === undefined) return undefined
  const metadata = () => {
    const headers = new Headers()
    for (const part of response) toHeaders(part, headers)
    return headers
  }
  const decoded = details === undefined ? undefined : decodeStatus(details)
  // grpc-status is authoritative; the details only stand in when it is missing.
  const code = status === undefined ? decoded?.code : /^\d+$/.test(status) ? Number(status) : -1
  if (code === 0) return null
  if (code === undefined || !(code in Code) || code < 0) {
    return new ConnectError(`protocol error: invalid grpc-status ${JSON.stringify(status)}`, Code.Internal, metadata())
  }
  const message = status === undefined ? (decoded?.message ?? '') : decodeMessage(single(fields['grpc-message']) ?? '')
  const error = new ConnectError(message, code as Code, metadata())
  if (decoded) error.details = decoded.details
  return error
}

/** grpc-message is percent-encoded UTF-8; a server that sent it raw is shown as it sent it. */
function decodeMessage(value: string): string {
  if (!value.includes('%')) return value
  try {
    return decodeURIComponent(value)
  } catch {
    return value
  }
}

/** `google.rpc.Status` (code 1, message 2, details 3) from base64, padded or not; undefined when it does not parse. */
function decodeStatus(base64: string): { code: number; message: string; details: IncomingDetail[] } | undefined {
  try {
    const reader = new BinaryReader(Buffer.from(base64, 'base64'))
    let code = 0
    let message = ''
    const details: IncomingDetail[] = []
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag()
      if (field === 1 && wireType === WireType.Varint) code = reader.int32()
      else if (field === 2 && wireType === WireType.LengthDelimited) message = reader.string()
      else if (field === 3 && wireType === WireType.LengthDelimited) details.push(decodeAny(reader.bytes()))
      else reader.skip(wireType, field)
    }
    return { code, message, details }
  } catch {
    return undefined
  }
}

/** `google.protobuf.Any` (type_url 1, value 2) as Connect's incoming detail: the type name after the last '/'. */
function decodeAny(bytes: Uint8Array): IncomingDetail {
  const reader = new BinaryReader(bytes)
  let typeUrl = ''
  let value: Uint8Array = new Uint8Array(0)
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag()
    if (field === 1 && wireType === WireType.LengthDelimited) typeUrl = reader.string()
    else if (field === 2 && wireType === WireType.LengthDelimited) value = reader.bytes()
    else reader.skip(wireType, field)
  }
  return { type: typeUrl.slice(typeUrl.lastIndexOf('/') + 1), value }
}

/** The code of a response whose HTTP status is not 200 (gRPC's http-grpc-status-mapping.md). */
export function codeOfHttpStatus(status: number): Code {
  switch (status) {
    case 400:
      return Code.Internal
    case 401:
      return Code.Unauthenticated
    case 403:
      return Code.PermissionDenied
    case 404:
      return Code.Unimplemented
    case 429:
    case 502:
    case 503:
    case 504:
      return Code.Unavailable
    default:
      return Code.Unknown
  }
}

/** The code of an HTTP/2 RST_STREAM code, as gRPC's PROTOCOL-HTTP2.md maps them. */
function codeOfReset(http2Code: number): Code {
  switch (http2Code) {
    case Http2ErrorCode.CANCEL:
      return Code.Canceled
    case Http2ErrorCode.REFUSED_STREAM:
      return Code.Unavailable
    case Http2ErrorCode.ENHANCE_YOUR_CALM:
      return Code.ResourceExhausted
    case Http2ErrorCode.INADEQUATE_SECURITY:
    case Http2ErrorCode.HTTP_1_1_REQUIRED:
      return Code.PermissionDenied
    default:
      return Code.Internal
  }
}

const UNAVAILABLE_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EPIPE'])

/**
 * Maps a drainpipe (or Node) failure to a `ConnectError`: unprocessed
 * failures, connection loss and drain deadlines are `Unavailable` (safe or
 * likely to succeed on a new connection), aborts `Canceled`, stream resets by
 * their HTTP/2 code, the rest `Internal`. A `ConnectError` passes through, also
 * as the cause of a request body that failed (a message over `writeMaxBytes`).
 */
export function toConnectError(error: unknown): ConnectError {
  if (error instanceof ConnectError) return error
  if (!(error instanceof Error)) return ConnectError.from(error, Code.Internal)
  if (error instanceof RequestBodyError && error.cause instanceof ConnectError) return error.cause
  return new ConnectError(error.message, codeOf(error), undefined, undefined, error)
}

function codeOf(error: Error): Code {
  if (error instanceof RequestAbortedError) return Code.Canceled
  if (error instanceof QueueFullError) return Code.ResourceExhausted
  if (error instanceof HeadersTimeoutError || error instanceof BodyTimeoutError) return Code.DeadlineExceeded
  if (error instanceof InvalidHeaderError || error instanceof InvalidArgumentError) return Code.Internal
  if (error instanceof ProtocolError && error.http2Code !== undefined) return codeOfReset(error.http2Code)
  if (error instanceof DrainpipeError) {
    // Unprocessed (refused, read-only, connect failures), connection lost, drain deadline.
    const unavailable = isUnprocessed(error) || error.code === 'DRAINPIPE_CONNECTION_LOST' || error.code === 'DRAINPIPE_DRAIN_TIMEOUT'
    return unavailable ? Code.Unavailable : Code.Internal
  }
  const nodeCode = (error as NodeJS.ErrnoException).code
  return nodeCode !== undefined && UNAVAILABLE_NODE_CODES.has(nodeCode) ? Code.Unavailable : Code.Internal
}

/** What an `AbortSignal`'s abort means for the call: `Canceled`, unless its reason says otherwise (a ConnectError passes). */
export function abortedBy(signal: AbortSignal): ConnectError {
  return ConnectError.from(signal.reason ?? new RequestAbortedError(), Code.Canceled)
}

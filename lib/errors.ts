/** Any value as text for an error message; never throws (an object may have no string form). */
export function shown(value: unknown): string {
  try {
    return String(value)
  } catch {
    return `[${typeof value}]`
  }
}

/**
 * The stable `code` of every error drainpipe raises, one per error class;
 * `DRAINPIPE_HANDLER` is a dispatch handler that threw something that is not
 * an `Error`, `DRAINPIPE_MSW_UNHANDLED` a request no msw handler answered
 * (`drainpipe-http2/testing`).
 */
export type ErrorCode =
  | 'DRAINPIPE_INVALID_OPTION'
  | 'DRAINPIPE_INVALID_ARGUMENT'
  | 'DRAINPIPE_INVALID_HEADER'
  | 'DRAINPIPE_CONNECT'
  | 'DRAINPIPE_CONNECT_TIMEOUT'
  | 'DRAINPIPE_PROTOCOL_NEGOTIATION'
  | 'DRAINPIPE_PROTOCOL'
  | 'DRAINPIPE_REFUSED_STREAM'
  | 'DRAINPIPE_READ_ONLY'
  | 'DRAINPIPE_DRAIN_TIMEOUT'
  | 'DRAINPIPE_CONNECTION_LOST'
  | 'DRAINPIPE_QUEUE_FULL'
  | 'DRAINPIPE_HEADERS_TIMEOUT'
  | 'DRAINPIPE_BODY_TIMEOUT'
  | 'DRAINPIPE_ABORTED'
  | 'DRAINPIPE_REQUEST_BODY'
  | 'DRAINPIPE_CLIENT_CLOSED'
  | 'DRAINPIPE_HANDLER'
  | 'DRAINPIPE_MSW_UNHANDLED'

/**
 * Every error drainpipe raises is a `DrainpipeError` with a stable `code`.
 *
 * `unprocessed: true` means the server provably never handled the request
 * (refused by a read-only pool before a byte was written, above a GOAWAY's
 * last-stream-id, or reset with REFUSED_STREAM): it is safe to send again,
 * whatever the method. Everything else has an unknown or failed outcome.
 */
export class DrainpipeError extends Error {
  /** The class name, for logs. */
  override name = 'DrainpipeError'
  /** Stable identifier (`DRAINPIPE_*`); match on this rather than on the message. */
  readonly code: ErrorCode
  /** The server provably never processed the request: safe to send again, whatever the method. */
  readonly unprocessed: boolean

  constructor(message: string, code: ErrorCode, options: { cause?: unknown; unprocessed?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.unprocessed = options.unprocessed ?? false
  }
}

/** An option has a wrong type, value, or a combination that cannot take effect. */
export class InvalidOptionError extends DrainpipeError {
  override name = 'InvalidOptionError'
  constructor(message: string) {
    super(message, 'DRAINPIPE_INVALID_OPTION')
  }
}

/** Bad request arguments: URL, method, path, body type. */
export class InvalidArgumentError extends DrainpipeError {
  override name = 'InvalidArgumentError'
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, 'DRAINPIPE_INVALID_ARGUMENT', options)
  }
}

/** A request header that cannot be sent: bad name or value, pseudo-header, conflicting duplicates. */
export class InvalidHeaderError extends DrainpipeError {
  override name = 'InvalidHeaderError'
  /** The offending header name, as given. */
  readonly header: string
  constructor(header: string, reason: string) {
    super(`Invalid header '${header}': ${reason}`, 'DRAINPIPE_INVALID_HEADER')
    this.header = header
  }
}

/** Could not establish a connection (lookup, TCP, TLS, HTTP/2 preface). Nothing was sent. */
export class ConnectError extends DrainpipeError {
  override name = 'ConnectError'
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, 'DRAINPIPE_CONNECT', { ...options, unprocessed: true })
  }
}

/** DNS lookup, TCP, TLS and the server's SETTINGS did not complete within `connectTimeout`. */
export class ConnectTimeoutError extends DrainpipeError {
  override name = 'ConnectTimeoutError'
  constructor(timeout: number, message = `Connect timeout: no HTTP/2 session within ${timeout} ms (connectTimeout)`) {
    super(message, 'DRAINPIPE_CONNECT_TIMEOUT', { unprocessed: true })
  }
}

/** The server negotiated a protocol drainpipe cannot speak on this origin. */
export class ProtocolNegotiationError extends DrainpipeError {
  override name = 'ProtocolNegotiationError'
  /** What the server negotiated through ALPN. */
  readonly protocol: string
  constructor(origin: string, protocol: string) {
    super(
      `${origin} negotiated '${protocol}' instead of 'h2' (ALPN)`,
      'DRAINPIPE_PROTOCOL_NEGOTIATION',
      { unprocessed: true },
    )
    this.protocol = protocol
  }
}

/** An HTTP/2 protocol or stream error reported by the peer or by node:http2. */
export class ProtocolError extends DrainpipeError {
  override name = 'ProtocolError'
  /** The HTTP/2 error code of the reset (`http2.constants.NGHTTP2_*`), when there was one. */
  readonly http2Code: number | undefined
  constructor(message: string, options: { cause?: unknown; http2Code?: number; unprocessed?: boolean } = {}) {
    super(message, 'DRAINPIPE_PROTOCOL', options)
    this.http2Code = options.http2Code
  }
}

/**
 * The server went past one of the wire engine's limits (a flood of SETTINGS,
 * PINGs or empty frames, an oversized header block, …): a `ProtocolError`
 * whose `limit` names the constant in lib/wire/limits.ts (or the setting)
 * that was exceeded.
 */
export class PeerLimitError extends ProtocolError {
  override name = 'PeerLimitError'
  /** The limit exceeded, as named in lib/wire/limits.ts (`MAX_PINGS_PER_WINDOW`) or the setting (`maxHeaderListSize`). */
  readonly limit: string
  constructor(limit: string, message: string, http2Code: number) {
    super(message, { http2Code })
    this.limit = limit
  }
}

/** The server reset the stream with REFUSED_STREAM: it did not process the request. */
export class RefusedStreamError extends DrainpipeError {
  override name = 'RefusedStreamError'
  constructor() {
    super('The server refused the stream (REFUSED_STREAM); the request was not processed', 'DRAINPIPE_REFUSED_STREAM', {
      unprocessed: true,
    })
  }
}

/**
 * The connection was read-only (draining, or above a GOAWAY's last-stream-id)
 * when the request reached it: it was not processed and may be sent again.
 */
export class ReadOnlyError extends DrainpipeError {
  override name = 'ReadOnlyError'
  constructor(message = 'The connection is read-only (draining); the request was not processed') {
    super(message, 'DRAINPIPE_READ_ONLY', { unprocessed: true })
  }
}

/** A draining connection's deadline (`drainTimeout`) passed with this stream still open. */
export class DrainTimeoutError extends DrainpipeError {
  override name = 'DrainTimeoutError'
  constructor(timeout: number) {
    super(`The stream was cancelled: its connection did not drain within ${timeout} ms (drainTimeout)`, 'DRAINPIPE_DRAIN_TIMEOUT')
  }
}

/** The connection died with the stream accepted: the outcome is unknown, so it is never retried silently. */
export class ConnectionLostError extends DrainpipeError {
  override name = 'ConnectionLostError'
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, 'DRAINPIPE_CONNECTION_LOST', options)
  }
}

/** Too many requests are waiting for a stream slot or a connection. */
export class QueueFullError extends DrainpipeError {
  override name = 'QueueFullError'
  constructor(origin: string, max: number) {
    super(`Too many requests waiting for ${origin}: the queue holds at most ${max} (maxQueue)`, 'DRAINPIPE_QUEUE_FULL', {
      unprocessed: true,
    })
  }
}

/** `12 ms (name)`, or the option's name alone when the number is not known. */
const within = (timeout: number | undefined, name: string) => (timeout === undefined ? name : `${timeout} ms (${name})`)

/** No response headers within `headersTimeout`. */
export class HeadersTimeoutError extends DrainpipeError {
  override name = 'HeadersTimeoutError'
  constructor(timeout: number | undefined, options: { cause?: unknown } = {}) {
    super(`No response headers within ${within(timeout, 'headersTimeout')}`, 'DRAINPIPE_HEADERS_TIMEOUT', options)
  }
}

/** No response body data within `bodyTimeout`. */
export class BodyTimeoutError extends DrainpipeError {
  override name = 'BodyTimeoutError'
  constructor(timeout: number | undefined, options: { cause?: unknown } = {}) {
    super(`No response body data within ${within(timeout, 'bodyTimeout')}`, 'DRAINPIPE_BODY_TIMEOUT', options)
  }
}

/** The caller aborted the request. `cause` holds the abort reason when one was given. */
export class RequestAbortedError extends DrainpipeError {
  override name = 'AbortError'
  constructor(options: { cause?: unknown } = {}) {
    super('The request was aborted', 'DRAINPIPE_ABORTED', options)
  }
}

/** The request body failed while it was being sent. */
export class RequestBodyError extends DrainpipeError {
  override name = 'RequestBodyError'
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, 'DRAINPIPE_REQUEST_BODY', options)
  }
}

/** The client was closed or destroyed. */
export class ClientClosedError extends DrainpipeError {
  override name = 'ClientClosedError'
  constructor(message = 'The client is closed', options: { cause?: unknown; unprocessed?: boolean } = {}) {
    super(message, 'DRAINPIPE_CLIENT_CLOSED', { unprocessed: true, ...options })
  }
}

const CONNECT_SYSCALLS = new Set(['connect', 'getaddrinfo', 'lookup', 'queryA', 'queryAaaa'])

/**
 * What the HTTP/1.1 fallback knows of a failed request, so the error can say
 * what undici's does not: the timeout that passed, and for an `http://`
 * origin what was probably meant.
 */
export interface UndiciContext {
  /** The request's origin (`http://host:port`). */
  origin: string
  /** The headersTimeout in force for the request (ms). */
  headersTimeout: number
  /** The bodyTimeout in force for the request (ms). */
  bodyTimeout: number
}

/**
 * An error from undici (its API layer, or the HTTP/1.1 fallback's Pool) as
 * the drainpipe error that means the same; anything else is returned as is
 * (an abort reason, a handler's own error). `context` comes from the
 * HTTP/1.1 fallback; without it the messages leave out what only it knows.
 */
export function fromUndici(error: unknown, context?: UndiciContext): unknown {
  if (!(error instanceof Error) || error instanceof DrainpipeError) return error
  const { code, syscall } = error as NodeJS.ErrnoException
  const cause = { cause: error }
  const plain = context === undefined || context.origin.startsWith('http:')
  // undici's HTTP parser error has no code (HPE_* only sometimes): an HTTP/2-only server
  // answering an HTTP/1.1 request is the usual way to get one.
  if (error.name === 'HTTPParserError') {
    const who = context === undefined ? 'The server' : context.origin
    const hint = plain ? ': if it speaks only HTTP/2 without TLS (h2c), set the option h2c: true' : ''
    return new ProtocolError(`${who} did not answer in HTTP/1.1 (${error.message})${hint}`, cause)
  }
  if (syscall !== undefined && CONNECT_SYSCALLS.has(syscall)) {
    return new ConnectError(`Could not connect: ${error.message}`, cause)
  }
  switch (code) {
    case 'UND_ERR_INVALID_ARG':
    case 'UND_ERR_INVALID_RETURN_VALUE':
    case 'UND_ERR_NOT_SUPPORTED':
      return new InvalidArgumentError(error.message, cause)
    case 'UND_ERR_CONNECT_TIMEOUT':
      return new ConnectError(error.message, cause)
    case 'UND_ERR_HEADERS_TIMEOUT':
      return new HeadersTimeoutError(context?.headersTimeout, cause)
    case 'UND_ERR_BODY_TIMEOUT':
      return new BodyTimeoutError(context?.bodyTimeout, cause)
    case 'UND_ERR_ABORT':
    case 'UND_ERR_ABORTED':
      return new RequestAbortedError(cause)
    case 'UND_ERR_CLOSED':
    case 'UND_ERR_DESTROYED':
      return new ClientClosedError(error.message, { ...cause, unprocessed: false })
    case 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH':
      return new RequestBodyError(error.message, cause)
    case 'UND_ERR_SOCKET':
    case 'ECONNRESET':
    case 'EPIPE': {
      // A TLS server closes on the plain-text request without a byte in reply.
      const silent = context !== undefined && plain && (error as { socket?: { bytesRead?: number } }).socket?.bytesRead === 0
      const hint = silent ? `; the server closed without answering a byte: if it speaks TLS, the URL is ${context.origin.replace(/^http:/, 'https:')}` : ''
      return new ConnectionLostError(`The connection was lost with the request in flight: ${error.message}${hint}`, cause)
    }
    default:
      return typeof code === 'string' && (code.startsWith('UND_ERR') || code.startsWith('HPE_'))
        ? new ProtocolError(error.message, cause)
        : error
  }
}

/** True for failures that provably never reached the server's application. */
export const isUnprocessed = (error: unknown): boolean => error instanceof DrainpipeError && error.unprocessed

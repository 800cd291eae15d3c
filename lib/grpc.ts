/**
 * `drainpipe/grpc`: a gRPC transport for Connect (`@connectrpc/connect` 2.x)
 * over drainpipe, so gRPC clients get connection ages, graceful draining and
 * retries of calls the server provably never processed.
 *
 * ```ts
 * import { createClient } from '@connectrpc/connect'
 * import { Client } from 'drainpipe'
 * import { createGrpcTransport } from 'drainpipe/grpc'
 *
 * const client = new Client({ maxConnectionAge: 60_000 })
 * const transport = createGrpcTransport({ baseUrl: 'https://api.internal:8443', client })
 * const greeter = createClient(GreeterService, transport)
 * ```
 *
 * Deadlines are Connect's (`timeoutMs`, sent as `grpc-timeout`): the
 * client's `headersTimeout` and `bodyTimeout` do not apply to gRPC calls, so
 * quiet streams live as long as the call.
 *
 * @module
 */
import { constants as http2Constants, type IncomingHttpHeaders } from 'node:http2'
import { promisify } from 'node:util'
import zlib from 'node:zlib'
import { Code, ConnectError, type Interceptor, type Transport } from '@connectrpc/connect'
import {
  validateReadWriteMaxBytes,
  type CommonTransportOptions,
  type Compression,
  type UniversalClientFn,
  type UniversalClientRequest,
  type UniversalClientResponse,
} from '@connectrpc/connect/protocol'
import { createTransport } from '@connectrpc/connect/protocol-grpc'
import type { Dispatcher } from 'undici'
import { Client } from './client.js'
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
} from './errors.js'

/** Options of {@link createGrpcTransport}: Connect's gRPC transport options, with a drainpipe `client` instead of node:http2 settings. */
export interface GrpcTransportOptions {
  /** Base URI of every call: requests go to `<baseUrl>/<package>.<Service>/<Method>`. `http://` means h2c. */
  baseUrl: string
  /**
   * The drainpipe client that carries the calls. Default: a new `Client` the
   * transport owns (with `h2c: true` for an `http://` baseUrl, and a 256 KiB
   * `retryBufferSize`, gRPC core's per-call retry buffer), closed by
   * `transport.close()`. A client you pass stays yours to close.
   */
  client?: Client
  /** Binary protobuf (default) or JSON (`application/grpc+json`). */
  useBinaryFormat?: boolean
  /** Interceptors applied to every call of this transport. */
  interceptors?: Interceptor[]
  /** Options of the JSON format. */
  jsonOptions?: CommonTransportOptions['jsonOptions']
  /** Options of the binary format. */
  binaryOptions?: CommonTransportOptions['binaryOptions']
  /** Response compressions the client accepts, most preferred first. Default `[compressionGzip]`; `[]` for none. */
  acceptCompression?: Compression[]
  /** Compression of request messages. Default none. */
  sendCompression?: Compression
  /** Messages smaller than this are sent uncompressed. Default 1 KiB. */
  compressMinBytes?: number
  /** Largest response message accepted. Default ~4 GiB (Connect's maximum). */
  readMaxBytes?: number
  /** Largest request message sent. Default ~4 GiB (Connect's maximum). */
  writeMaxBytes?: number
  /** Deadline of every call (ms) unless the call sets `timeoutMs`. */
  defaultTimeoutMs?: number
}

/** A Connect `Transport` over drainpipe. */
export interface GrpcTransport extends Transport {
  /** The drainpipe client carrying the calls. */
  readonly client: Client
  /** Closes the client gracefully if the transport created it; does nothing to a client that was passed in. */
  close(): Promise<void>
  /** `await using transport = createGrpcTransport(…)`: same as `close()`. */
  [Symbol.asyncDispose](): Promise<void>
}

const gzip = promisify(zlib.gzip)
const gunzip = promisify(zlib.gunzip)

/** gzip with node:zlib, for `acceptCompression` and `sendCompression`. */
export const compressionGzip: Compression = {
  name: 'gzip',
  async compress(bytes) {
    return toArrayBufferView(await gzip(bytes))
  },
  async decompress(bytes, readMaxBytes) {
    if (bytes.length === 0) return new Uint8Array(0)
    try {
      return toArrayBufferView(await gunzip(bytes, { maxOutputLength: readMaxBytes }))
    } catch (error) {
      const tooLarge = (error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE'
      throw new ConnectError(
        tooLarge ? `message is larger than readMaxBytes ${readMaxBytes} after decompression` : 'gzip decompression failed',
        tooLarge ? Code.ResourceExhausted : Code.InvalidArgument,
        undefined,
        undefined,
        error,
      )
    }
  },
}

function toArrayBufferView(bytes: Buffer): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer ? (bytes as Uint8Array<ArrayBuffer>) : new Uint8Array(bytes)
}

/** gRPC core's default `grpc.per_rpc_retry_buffer_size`: streamed requests up to this size stay retryable. */
const GRPC_RETRY_BUFFER_SIZE = 256 * 1024

/**
 * Creates a Connect transport for the gRPC protocol that sends every call as
 * a drainpipe HTTP/2 stream: calls survive connection recycles and server
 * GOAWAYs (such as grpc-js' `grpc.max_connection_age_ms`).
 */
export function createGrpcTransport(options: GrpcTransportOptions): GrpcTransport {
  const { client: given, baseUrl, ...connectOptions } = options
  const owned = given === undefined
  const client = given ?? new Client({ h2c: new URL(baseUrl).protocol === 'http:', retryBufferSize: GRPC_RETRY_BUFFER_SIZE })
  const transport = createTransport({
    ...connectOptions,
    baseUrl,
    httpClient: createUniversalClient(client),
    useBinaryFormat: options.useBinaryFormat ?? true,
    interceptors: options.interceptors ?? [],
    acceptCompression: options.acceptCompression ?? [compressionGzip],
    sendCompression: options.sendCompression ?? null,
    ...validateReadWriteMaxBytes(options.readMaxBytes, options.writeMaxBytes, options.compressMinBytes),
  })
  const close = () => (owned ? client.close() : Promise.resolve())
  return {
    unary: transport.unary.bind(transport),
    stream: transport.stream.bind(transport),
    client,
    close,
    [Symbol.asyncDispose]: close,
  }
}

/** Response bytes buffered for a slow reader before the stream is paused (HTTP/2 flow control then holds the server). */
const HIGH_WATER_MARK = 64 * 1024

/**
 * Connect's minimal HTTP client (`UniversalClientFn`) over a drainpipe
 * client; the building block of {@link createGrpcTransport}, usable with
 * Connect's other protocols (`@connectrpc/connect/protocol-connect`) too.
 *
 * Calls the server provably did not process are retried by the client
 * (its `retries`), request messages included while they fit its
 * `retryBufferSize`.
 */
export function createUniversalClient(client: Client): UniversalClientFn {
  return (request) => new UniversalCall(client, request).response
}

/** One call: dispatches it, then feeds the response body and trailers to Connect. */
class UniversalCall {
  readonly response: Promise<UniversalClientResponse>
  readonly #client: Client
  readonly #request: UniversalClientRequest
  #resolve!: (response: UniversalClientResponse) => void
  #reject!: (error: ConnectError) => void
  #attempt: Attempt | undefined
  #settled = false
  readonly #onAbort = () => this.#attempt?.abort(abortReason(this.#request.signal!))

  constructor(client: Client, request: UniversalClientRequest) {
    this.#client = client
    this.#request = request
    this.response = new Promise((resolve, reject) => {
      this.#resolve = resolve
      this.#reject = reject
    })
    const url = new URL(request.url)
    const headers: Record<string, string> = {}
    request.header.forEach((value, name) => {
      headers[name] = value
    })
    const signal = request.signal
    if (signal?.aborted) {
      this.#fail(abortReason(signal))
      return
    }
    signal?.addEventListener('abort', this.#onAbort)
    const attempt = new Attempt(this)
    this.#attempt = attempt
    this.#client.dispatch(
      {
        origin: url.origin,
        path: `${url.pathname}${url.search}`,
        method: request.method,
        headers,
        // drainpipe streams async-iterable bodies with HTTP/2 flow control (undici's types only list Readable).
        body: (request.body ?? null) as Dispatcher.DispatchOptions['body'],
        // Deadlines are Connect's (grpc-timeout and the call's signal); a quiet stream is no failure.
        headersTimeout: 0,
        bodyTimeout: 0,
      },
      attempt,
    )
  }

  /** The server has the call: hand Connect the response. */
  started(attempt: Attempt, status: number, headers: IncomingHttpHeaders): void {
    this.#resolve({ status, header: toHeaders(headers), body: attempt.body, trailer: attempt.trailer })
  }

  /** The call failed before a response (the client already retried what was safe to). */
  failedBeforeResponse(error: Error): void {
    const signal = this.#request.signal
    this.#fail(signal?.aborted ? abortReason(signal) : toConnectError(error))
  }

  #fail(error: ConnectError): void {
    this.#reject(error)
    this.finish()
  }

  /** The call is over (response ended, failed or abandoned). */
  finish(): void {
    if (this.#settled) return
    this.#settled = true
    this.#request.signal?.removeEventListener('abort', this.#onAbort)
  }

  get signal(): AbortSignal | undefined {
    return this.#request.signal
  }
}

/** One dispatch of a call: an undici controller-style handler that turns the response into Connect's shape. */
class Attempt implements Dispatcher.DispatchHandler {
  readonly trailer = new Headers()
  readonly body: ResponseBody
  readonly #call: UniversalCall
  #controller: Dispatcher.DispatchController | undefined
  #started = false

  constructor(call: UniversalCall) {
    this.#call = call
    this.body = new ResponseBody(this)
  }

  abort(reason: Error): void {
    this.#controller?.abort(reason)
  }

  pause(): void {
    this.#controller?.pause()
  }

  resume(): void {
    this.#controller?.resume()
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    this.#started = true
    this.#call.started(this, statusCode, headers)
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.body.push(chunk)
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    toHeaders(trailers).forEach((value, name) => this.trailer.append(name, value))
    this.body.end()
    this.#call.finish()
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (!this.#started) {
      this.#call.failedBeforeResponse(error)
      return
    }
    const signal = this.#call.signal
    this.body.fail(signal?.aborted ? abortReason(signal) : toConnectError(error))
    this.#call.finish()
  }
}

/** The response body as an async iterable; pauses the stream while the reader is behind. */
class ResponseBody implements AsyncIterable<Uint8Array> {
  readonly #attempt: Attempt
  readonly #queue: Buffer[] = []
  #queued = 0
  #paused = false
  #ended = false
  #error: ConnectError | undefined
  #wake: (() => void) | undefined

  constructor(attempt: Attempt) {
    this.#attempt = attempt
  }

  push(chunk: Buffer): void {
    this.#queue.push(chunk)
    this.#queued += chunk.length
    if (this.#queued >= HIGH_WATER_MARK && !this.#paused) {
      this.#paused = true
      this.#attempt.pause()
    }
    this.#notify()
  }

  end(): void {
    this.#ended = true
    this.#notify()
  }

  fail(error: ConnectError): void {
    this.#error ??= error
    this.#notify()
  }

  #notify(): void {
    const wake = this.#wake
    this.#wake = undefined
    wake?.()
  }

  async #next(): Promise<IteratorResult<Uint8Array>> {
    for (;;) {
      const chunk = this.#queue.shift()
      if (chunk !== undefined) {
        this.#queued -= chunk.length
        if (this.#paused && this.#queued < HIGH_WATER_MARK / 2) {
          this.#paused = false
          this.#attempt.resume()
        }
        return { done: false, value: chunk }
      }
      if (this.#error) throw this.#error
      if (this.#ended) return { done: true, value: undefined }
      await new Promise<void>((resolve) => {
        this.#wake = resolve
      })
    }
  }

  /** The reader gave up (or failed downstream): cancel the stream, it must not stay open. */
  #abandon(reason: ConnectError): void {
    if (this.#ended || this.#error) return
    this.#error = reason
    this.#attempt.abort(reason)
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return {
      next: () => this.#next(),
      return: async () => {
        this.#abandon(new ConnectError('the response body was abandoned before it ended', Code.Canceled))
        return { done: true, value: undefined }
      },
      // Connect reports errors downstream (a bad message, readMaxBytes) through throw().
      throw: async (error: unknown) => {
        this.#abandon(ConnectError.from(error, Code.Internal))
        throw error
      },
    }
  }
}

function toHeaders(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): Headers {
  const result = new Headers()
  for (const name in headers) {
    if (name.startsWith(':')) continue
    const value = headers[name]
    if (Array.isArray(value)) for (const item of value) result.append(name, item)
    else if (value !== undefined) result.append(name, String(value))
  }
  return result
}

function abortReason(signal: AbortSignal): ConnectError {
  return ConnectError.from(signal.reason ?? new RequestAbortedError(), Code.Canceled)
}

const { NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_INADEQUATE_SECURITY, NGHTTP2_HTTP_1_1_REQUIRED, NGHTTP2_REFUSED_STREAM } =
  http2Constants

/** The Connect code of an HTTP/2 RST_STREAM code, as gRPC's PROTOCOL-HTTP2.md maps them. */
function codeOfReset(http2Code: number): Code {
  switch (http2Code) {
    case NGHTTP2_CANCEL:
      return Code.Canceled
    case NGHTTP2_REFUSED_STREAM:
      return Code.Unavailable
    case NGHTTP2_ENHANCE_YOUR_CALM:
      return Code.ResourceExhausted
    case NGHTTP2_INADEQUATE_SECURITY:
    case NGHTTP2_HTTP_1_1_REQUIRED:
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
 * their HTTP/2 code, the rest `Internal`. A `ConnectError` passes through.
 */
export function toConnectError(error: unknown): ConnectError {
  if (error instanceof ConnectError) return error
  if (!(error instanceof Error)) return ConnectError.from(error, Code.Internal)
  if (error instanceof RequestBodyError && error.cause instanceof ConnectError) return error.cause
  const code = codeOf(error)
  return new ConnectError(error.message, code, undefined, undefined, error)
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

/**
 * One gRPC call as one drainpipe dispatch. The call is the dispatch handler:
 * it checks the response headers, splits DATA into messages, reads the
 * status from the trailers (or a trailers-only response), and ends the call
 * early when the caller's signal aborts, the deadline passes, or the
 * response breaks a limit or the protocol; ending early resets the stream
 * with CANCEL.
 *
 * Per call there is this object, the framed request, drainpipe's own
 * request, and the promise Connect's API requires: no Web streams, no
 * `Headers` unless someone reads `header` or `trailer` (or an error carries
 * metadata), and no promise per received message beyond the one each
 * `next()` of a stream returns.
 */
import type { DescMessage, DescMethodStreaming, DescMethodUnary, MessageShape } from '@bufbuild/protobuf'
import { Code, ConnectError, type UnaryResponse } from '@connectrpc/connect'
import type { Compression } from '@connectrpc/connect/protocol'
import type { Dispatcher } from 'undici'
import { MessageDecoder, type MessageSink } from './framing.js'
import { toHeaders, type RequestFields, type ResponseFields } from './metadata.js'
import type { MethodPlan, TransportSettings } from './request.js'
import { abortedBy, codeOfHttpStatus, statusOf, toConnectError } from './status.js'

export type Message = MessageShape<DescMessage>

const NO_FIELDS: ResponseFields = Object.freeze({})

/** `application/grpc`, optionally with a sub-type (`+proto`, `+json`) or parameters. */
function isGrpcContentType(type: string | string[] | undefined): boolean {
  if (typeof type !== 'string' || !type.startsWith('application/grpc')) return false
  const next = type.charCodeAt(16)
  return Number.isNaN(next) || next === 43 /* + */ || next === 59 /* ; */
}

export abstract class GrpcCall implements Dispatcher.DispatchHandler, MessageSink {
  protected readonly settings: TransportSettings
  readonly plan: MethodPlan
  protected headerFields: ResponseFields = NO_FIELDS
  protected trailerFields: ResponseFields = NO_FIELDS
  #compression: Compression | null = null
  readonly #decoder: MessageDecoder
  #controller: Dispatcher.DispatchController | undefined
  #signal: AbortSignal | undefined
  #onAbort: (() => void) | undefined
  #timer: NodeJS.Timeout | undefined
  #onOver: ((error: ConnectError | undefined) => void) | undefined
  /** The exchange is over (ended or failed): timers and listeners are gone, late events change nothing. */
  #over = false
  #header: Headers | undefined
  #trailer: Headers | undefined

  constructor(settings: TransportSettings, plan: MethodPlan) {
    this.settings = settings
    this.plan = plan
    this.#decoder = new MessageDecoder(settings.readMaxBytes, this)
  }

  /** The response headers as Connect shows them (made on first use). */
  get header(): Headers {
    return (this.#header ??= toHeaders(this.headerFields))
  }

  /** The trailers as Connect shows them: filled in when they arrive, if someone already holds them. */
  get trailer(): Headers {
    return (this.#trailer ??= toHeaders(this.trailerFields))
  }

  /**
   * Arms the caller's signal and the deadline, before the request is
   * prepared (compression and a streamed input take time too). False when
   * the signal was already aborted: the call failed. `onOver` learns when
   * the call is over, and with which error.
   */
  arm(signal: AbortSignal | undefined, timeoutMs: number | undefined, onOver?: (error: ConnectError | undefined) => void): boolean {
    this.#onOver = onOver
    if (signal !== undefined) {
      if (signal.aborted) {
        this.fail(abortedBy(signal))
        return false
      }
      this.#signal = signal
      this.#onAbort = () => this.abort(abortedBy(signal))
      signal.addEventListener('abort', this.#onAbort)
    }
    if (timeoutMs !== undefined) {
      this.#timer = setTimeout(() => this.abort(new ConnectError(`deadline exceeded after ${timeoutMs} ms`, Code.DeadlineExceeded)), timeoutMs)
    }
    return true
  }

  /** Sends the request, unless the call ended while it was being prepared. */
  send(fields: RequestFields, body: Buffer | AsyncIterable<Buffer>): void {
    if (this.#over) return
    this.settings.client.dispatch(
      {
        origin: this.plan.origin,
        path: this.plan.path,
        method: 'POST',
        headers: fields,
        // drainpipe streams async-iterable bodies with HTTP/2 flow control (undici's types only list Readable).
        body: body as Dispatcher.DispatchOptions['body'],
        // Deadlines are gRPC's (grpc-timeout and the call's timer): a quiet stream is no failure.
        headersTimeout: 0,
        bodyTimeout: 0,
      },
      this,
    )
  }

  /** Ends the call with `error`, resetting its stream (CANCEL) when there is one; drainpipe then reports it back. */
  abort(error: ConnectError): void {
    if (this.#over) return
    if (this.#controller === undefined) this.fail(error)
    else this.#controller.abort(error)
  }

  /** The call failed before or outside its stream (preparing the request, a signal aborted before the dispatch). */
  fail(error: ConnectError): void {
    if (this.#over) return
    this.#finish(error)
    this.failed(error)
  }

  protected pause(): void {
    this.#controller?.pause()
  }

  protected resume(): void {
    this.#controller?.resume()
  }

  /** A received message, decompressed and parsed; a promise only when it was compressed. Throws a `ConnectError`. */
  protected decode(bytes: Uint8Array, compressed: boolean): Message | Promise<Message> {
    if (!compressed) return this.plan.parse(bytes)
    const compression = this.#compression
    if (compression === null) throw new ConnectError('protocol error: a compressed message without grpc-encoding', Code.Internal)
    return compression.decompress(bytes, this.settings.readMaxBytes).then((inflated) => this.plan.parse(inflated))
  }

  #finish(error: ConnectError | undefined): void {
    this.#over = true
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    if (this.#onAbort !== undefined) this.#signal!.removeEventListener('abort', this.#onAbort)
    this.#onOver?.(error)
  }

  // ── The dispatch handler ───────────────────────────────────────────────

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller
  }

  onResponseStart(_controller: Dispatcher.DispatchController, status: number, headers: ResponseFields): void {
    this.headerFields = headers
    if (status !== 200) {
      // A proxy's error page, or a server that also says why in grpc-status.
      this.abort(statusOf(headers, [headers]) ?? new ConnectError(`HTTP ${status}`, codeOfHttpStatus(status), toHeaders(headers)))
      return
    }
    const type = headers['content-type']
    if (!isGrpcContentType(type)) {
      this.abort(new ConnectError(`protocol error: unexpected content-type ${JSON.stringify(type ?? null)}`, Code.Unknown, toHeaders(headers)))
      return
    }
    const encoding = headers['grpc-encoding']
    if (encoding !== undefined && encoding !== 'identity') {
      // A server may answer in the request's compression (Connect's servers do without grpc-accept-encoding).
      const send = this.settings.sendCompression
      const compression = send?.name === encoding ? send : this.settings.acceptCompression.find((candidate) => candidate.name === encoding)
      if (compression === undefined) {
        this.abort(new ConnectError(`protocol error: unsupported response encoding ${JSON.stringify(encoding)}`, Code.Internal, toHeaders(headers)))
        return
      }
      this.#compression = compression
    }
    this.responded(headers['grpc-status'] !== undefined)
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    try {
      this.#decoder.push(chunk)
    } catch (error) {
      this.abort(toConnectError(error))
    }
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: ResponseFields): void {
    if (this.#over) return
    this.trailerFields = trailers
    if (this.#trailer !== undefined) toHeaders(trailers, this.#trailer)
    let status = statusOf(trailers, [this.headerFields, trailers])
    // Trailers-only: the status came with the headers (and no trailers follow).
    if (status === undefined) status = statusOf(this.headerFields, [this.headerFields])
    if (status === undefined) status = new ConnectError('protocol error: the response ended without grpc-status', Code.Internal, this.#metadata())
    else if (status === null && this.#decoder.partial) status = new ConnectError('protocol error: the response ended inside a message', Code.Internal)
    this.#finish(status ?? undefined)
    this.ended(status)
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (this.#over) return
    const failure = toConnectError(error)
    this.#finish(failure)
    this.failed(failure)
  }

  #metadata(): Headers {
    return toHeaders(this.trailerFields, toHeaders(this.headerFields))
  }

  // ── What unary and streaming calls do differently ─────────────────────

  /** Response headers arrived and are a gRPC response; `trailersOnly`: they also carry the status. */
  protected abstract responded(trailersOnly: boolean): void
  /** One whole message arrived (still compressed if `compressed`). Throws a `ConnectError` to end the call. */
  abstract received(message: Buffer, compressed: boolean): void
  /** The response ended: `null` for OK, or the status error. */
  protected abstract ended(status: ConnectError | null): void
  /** The call failed (the stream, the connection, a deadline, the caller). */
  protected abstract failed(error: ConnectError): void
}

// ── Unary ────────────────────────────────────────────────────────────────

/** A unary call: its promise settles when the status arrives, with the one message. */
export class UnaryCall extends GrpcCall {
  readonly response: Promise<UnaryResponse>
  #resolve!: (response: UnaryResponse) => void
  #reject!: (error: ConnectError) => void
  #message: Buffer | undefined
  #compressed = false

  constructor(settings: TransportSettings, plan: MethodPlan) {
    super(settings, plan)
    this.response = new Promise((resolve, reject) => {
      this.#resolve = resolve
      this.#reject = reject
    })
  }

  protected responded(): void {}

  received(message: Buffer, compressed: boolean): void {
    if (this.#message !== undefined) throw new ConnectError('protocol error: more than one response message for a unary method', Code.Unimplemented)
    this.#message = message
    this.#compressed = compressed
  }

  protected ended(status: ConnectError | null): void {
    if (status !== null) return this.#reject(status)
    if (this.#message === undefined) return this.#reject(new ConnectError('protocol error: no response message for a unary method', Code.Unimplemented))
    try {
      const message = this.decode(this.#message, this.#compressed)
      if (message instanceof Promise) message.then((value) => this.#resolve(new UnaryResult(this, value)), (error) => this.#reject(toConnectError(error)))
      else this.#resolve(new UnaryResult(this, message))
    } catch (error) {
      this.#reject(toConnectError(error))
    }
  }

  protected failed(error: ConnectError): void {
    this.#reject(error)
  }
}

/**
 * What a call resolves with: its method, and its metadata, read from the call when asked (the
 * trailers arrive after the result is handed out).
 */
export abstract class CallResult<Method extends DescMethodUnary | DescMethodStreaming> {
  readonly method: Method
  readonly service: Method['parent']
  readonly #call: GrpcCall

  constructor(call: GrpcCall) {
    this.#call = call
    this.method = call.plan.method as Method
    this.service = this.method.parent
  }

  get header(): Headers {
    return this.#call.header
  }

  get trailer(): Headers {
    return this.#call.trailer
  }
}

class UnaryResult extends CallResult<DescMethodUnary> implements UnaryResponse {
  readonly stream = false
  readonly message: Message

  constructor(call: UnaryCall, message: Message) {
    super(call)
    this.message = message
  }
}

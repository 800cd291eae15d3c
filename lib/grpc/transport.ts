/**
 * The Connect `Transport` for the gRPC protocol, speaking it directly on a
 * drainpipe client: every call is one `client.dispatch` with a `UnaryCall`
 * or `StreamCall` as its handler. Without interceptors a call goes straight
 * there; with interceptors it first goes through them, with the request
 * Connect's own transports give them (`Headers`, full messages, a signal).
 */
import { create, type DescMessage, type DescMethod, type DescMethodStreaming, type DescMethodUnary, type MessageInitShape } from '@bufbuild/protobuf'
import {
  createContextValues,
  type ConnectError,
  type ContextValues,
  type Interceptor,
  type StreamResponse,
  type Transport,
  type UnaryResponse,
} from '@connectrpc/connect'
import { createClientMethodSerializers, type CommonTransportOptions, type Compression } from '@connectrpc/connect/protocol'
import { Client } from '../client.js'
import { InvalidOptionError } from '../errors.js'
import type { ClientOptions, KeepAliveOptions } from '../options.js'
import { UnaryCall } from './call.js'
import { StreamCall } from './stream-call.js'
import { compressionGzip } from './compression.js'
import { intercept, InterceptedRequest, normalized } from './interceptors.js'
import { grpcTimeout, metadataFields, type RequestFields } from './metadata.js'
import { collectMessages, encodeMessage, RequestFrames, type MethodPlan, type TransportSettings } from './request.js'
import { toConnectError } from './status.js'

/** Options of {@link createGrpcTransport}: Connect's gRPC transport options, with a drainpipe `client` instead of node:http2 settings. */
export interface GrpcTransportOptions {
  /** Base URI of every call: requests go to `<baseUrl>/<package>.<Service>/<Method>`. `http://` means h2c. */
  baseUrl: string
  /**
   * The drainpipe client that carries the calls. Default: a new `Client` the
   * transport owns, closed by `transport.close()`: `h2c: true` for an
   * `http://` baseUrl, a 256 KiB `retryBufferSize` (the request messages a
   * call keeps for a transparent retry) and {@link grpcKeepAlive}, then
   * `clientOptions`. A client you pass stays yours to close; it needs
   * `h2c: true` for an `http://` baseUrl, and `keepAlive: grpcKeepAlive` if
   * it talks to grpc-go or gRPC core servers.
   */
  client?: Client
  /** Options of the transport-owned client, over the defaults above (not with `client`). */
  clientOptions?: ClientOptions
  /** Binary protobuf (default, `application/grpc`) or JSON (`application/grpc+json`). */
  useBinaryFormat?: boolean
  /** Interceptors applied to every call of this transport. */
  interceptors?: Interceptor[]
  /** Options of the JSON format. */
  jsonOptions?: CommonTransportOptions['jsonOptions']
  /** Options of the binary format. */
  binaryOptions?: CommonTransportOptions['binaryOptions']
  /** Response compressions the client accepts (`grpc-accept-encoding`), most preferred first. Default `[compressionGzip]`; `[]` for none. */
  acceptCompression?: Compression[]
  /** Compression of request messages (`grpc-encoding`). Default none. */
  sendCompression?: Compression
  /** Messages smaller than this are sent uncompressed. Default 1 KiB. */
  compressMinBytes?: number
  /**
   * Largest response message accepted (gRPC's max receive message length);
   * a larger one fails the call with `ResourceExhausted` before it is
   * buffered. Default 0xffffffff (Connect's maximum; grpc-js uses 4 MiB).
   */
  readMaxBytes?: number
  /** Largest request message sent (gRPC's max send message length); a larger one fails with `ResourceExhausted`. Default 0xffffffff. */
  writeMaxBytes?: number
  /** Deadline of every call (ms) unless the call sets `timeoutMs` (where 0 or less means none, as in Connect). Default none. */
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

/**
 * PING liveness of the transport-owned client. gRPC servers police PINGs:
 * grpc-go by default allows one every 5 minutes (`MinTime`) and none on a
 * connection without streams; gRPC core likewise (5 minutes without data,
 * 2 strikes). Past that they send GOAWAY `too_many_pings` and close the
 * connection, in-flight calls included. drainpipe pings only after
 * `interval` without receiving anything and only while calls are open, so
 * an interval of 5 minutes is never punished; the ACK deadline is gRPC's
 * own default keepalive timeout (20 s). A silent dead connection under an
 * open call is then found within 5 min 20 s (grpc-js and grpc-go clients
 * send no PINGs at all by default).
 */
export const grpcKeepAlive: Readonly<Required<KeepAliveOptions>> = Object.freeze({ interval: 300_000, timeout: 20_000, whenIdle: false })

/** gRPC core's per-call retry buffer is 256 KiB (`grpc.per_rpc_retry_buffer_size`): streamed requests up to this stay retryable. */
const GRPC_RETRY_BUFFER_SIZE = 256 * 1024

/** What gRPC calls a structured user agent: grpc-<language>-<implementation>. */
const USER_AGENT = 'grpc-node-drainpipe'

/** Connect's and zlib's ceiling for a message. */
const MAX_MESSAGE_BYTES = 0xffffffff

function byteLimit(name: string, value: number | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback
  if (!Number.isInteger(value) || value < min || value > MAX_MESSAGE_BYTES) {
    throw new InvalidOptionError(`Option '${name}' must be an integer from ${min} to ${MAX_MESSAGE_BYTES}, got ${String(value)}`)
  }
  return value
}

function parseBaseUrl(baseUrl: unknown): URL {
  let url: URL | undefined
  try {
    url = new URL(String(baseUrl))
  } catch {
    // reported below
  }
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.search !== '' || url.hash !== '') {
    throw new InvalidOptionError(`Option 'baseUrl' must be an http: or https: URL without query or fragment, got ${JSON.stringify(String(baseUrl))}`)
  }
  return url
}

/**
 * Creates a Connect transport for the gRPC protocol that sends every call as
 * a drainpipe HTTP/2 stream: calls survive connection recycles and server
 * GOAWAYs (such as grpc-js' `grpc.max_connection_age_ms`), and calls the
 * server provably never saw are retried transparently.
 */
export function createGrpcTransport(options: GrpcTransportOptions): GrpcTransport {
  const base = parseBaseUrl(options.baseUrl)
  if (options.client !== undefined && options.clientOptions !== undefined) {
    throw new InvalidOptionError("Options 'client' and 'clientOptions' exclude each other: 'clientOptions' configure the client the transport creates")
  }
  const owned = options.client === undefined
  const client =
    options.client ??
    new Client({
      h2c: base.protocol === 'http:',
      retryBufferSize: GRPC_RETRY_BUFFER_SIZE,
      keepAlive: grpcKeepAlive,
      ...options.clientOptions,
    })
  const sendCompression = options.sendCompression ?? null
  const acceptCompression = options.acceptCompression ?? [compressionGzip]
  const settings: TransportSettings = {
    client,
    readMaxBytes: byteLimit('readMaxBytes', options.readMaxBytes, MAX_MESSAGE_BYTES, 1),
    writeMaxBytes: byteLimit('writeMaxBytes', options.writeMaxBytes, MAX_MESSAGE_BYTES, 1),
    compressMinBytes: byteLimit('compressMinBytes', options.compressMinBytes, 1024, 0),
    sendCompression,
    acceptCompression,
  }
  const interceptors = options.interceptors ?? []
  const useBinaryFormat = options.useBinaryFormat ?? true
  const defaultTimeoutMs = options.defaultTimeoutMs !== undefined && options.defaultTimeoutMs > 0 ? options.defaultTimeoutMs : undefined

  // Protocol fields override the caller's metadata; a caller's user-agent is kept.
  const protocolFields: RequestFields = { 'content-type': useBinaryFormat ? 'application/grpc' : 'application/grpc+json', te: 'trailers' }
  if (sendCompression !== null) protocolFields['grpc-encoding'] = sendCompression.name
  if (acceptCompression.length > 0) protocolFields['grpc-accept-encoding'] = acceptCompression.map((compression) => compression.name).join(',')
  // Most calls carry no metadata and no deadline: they all send this one object (drainpipe only reads it).
  const plainFields: RequestFields = Object.freeze({ 'user-agent': USER_AGENT, ...protocolFields })
  const requestFields = (header: HeadersInit | undefined, timeoutMs: number | undefined): RequestFields => {
    if (header === undefined && timeoutMs === undefined) return plainFields
    const fields = header === undefined ? {} : metadataFields(header, {})
    fields['user-agent'] ??= USER_AGENT
    Object.assign(fields, protocolFields)
    if (timeoutMs !== undefined) fields['grpc-timeout'] = grpcTimeout(timeoutMs)
    return fields
  }

  const basePath = base.pathname.replace(/\/$/, '')
  const plans = new WeakMap<DescMethod, MethodPlan>()
  const planOf = (method: DescMethod): MethodPlan => {
    let plan = plans.get(method)
    if (plan === undefined) {
      const path = `${basePath}/${method.parent.typeName}/${method.name}`
      plan = {
        method,
        input: method.input,
        origin: base.origin,
        path,
        url: `${base.origin}${path}`,
        ...createClientMethodSerializers(method, useBinaryFormat, options.jsonOptions, options.binaryOptions),
      }
      plans.set(method, plan)
    }
    return plan
  }
  /** An interceptor may have changed the URL. */
  const planAt = (plan: MethodPlan, url: string): MethodPlan => {
    if (url === plan.url) return plan
    const target = parseBaseUrl(url)
    return { ...plan, origin: target.origin, path: target.pathname, url }
  }
  // Connect's rule: no timeoutMs → the transport's default; zero or less → no deadline.
  const deadlineOf = (timeoutMs: number | undefined) => (timeoutMs === undefined ? defaultTimeoutMs : timeoutMs > 0 ? timeoutMs : undefined)

  const startUnary = (plan: MethodPlan, fields: RequestFields, input: unknown, signal: AbortSignal | undefined, timeoutMs: number | undefined) => {
    const call = new UnaryCall(settings, plan)
    if (!call.arm(signal, timeoutMs)) return call.response
    let body: Buffer | Promise<Buffer>
    try {
      body = encodeMessage(settings, plan, input)
    } catch (error) {
      call.fail(toConnectError(error))
      return call.response
    }
    if (body instanceof Promise) body.then((framed) => call.send(fields, framed), (error: unknown) => call.fail(toConnectError(error)))
    else call.send(fields, body)
    return call.response
  }

  const startStream = (
    plan: MethodPlan,
    fields: RequestFields,
    input: AsyncIterable<unknown>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    onOver?: (error: ConnectError | undefined) => void,
  ) => {
    const call = new StreamCall(settings, plan)
    if (!call.arm(signal, timeoutMs, onOver)) return call.response
    if (plan.method.methodKind === 'server_streaming') {
      // One request message: sent as a fixed body, replayable whatever its size.
      collectMessages(input, settings, plan).then((body) => call.send(fields, body), (error: unknown) => call.fail(toConnectError(error)))
    } else {
      call.send(fields, new RequestFrames(input, settings, plan))
    }
    return call.response
  }

  const transport: Transport = {
    unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: MessageInitShape<I>,
      contextValues?: ContextValues,
    ): Promise<UnaryResponse<I, O>> {
      const plan = planOf(method)
      const deadline = deadlineOf(timeoutMs)
      if (interceptors.length === 0) return startUnary(plan, requestFields(header, deadline), input, signal, deadline) as Promise<UnaryResponse<I, O>>
      const request = new InterceptedRequest(
        { stream: false, service: method.parent, method, url: plan.url, contextValues: contextValues ?? createContextValues(), message: create(method.input, input) },
        requestFields(header, deadline),
        signal,
        deadline,
      )
      // The call keeps its own deadline timer; grpc-timeout is in the fields already.
      return intercept(interceptors, request, (req) =>
        startUnary(planAt(plan, req.url), request.fieldsOf(req), req.message, request.signalOf(req), deadline),
      ) as Promise<UnaryResponse<I, O>>
    },

    stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: AsyncIterable<MessageInitShape<I>>,
      contextValues?: ContextValues,
    ): Promise<StreamResponse<I, O>> {
      const plan = planOf(method)
      const deadline = deadlineOf(timeoutMs)
      if (interceptors.length === 0) return startStream(plan, requestFields(header, deadline), input, signal, deadline) as Promise<StreamResponse<I, O>>
      const request = new InterceptedRequest(
        { stream: true, service: method.parent, method, url: plan.url, contextValues: contextValues ?? createContextValues(), message: normalized(method.input, input) },
        requestFields(header, deadline),
        signal,
        deadline,
      )
      return intercept(interceptors, request, (req) =>
        startStream(planAt(plan, req.url), request.fieldsOf(req), req.message as AsyncIterable<unknown>, request.signalOf(req), deadline, (error) =>
          request.settle(error),
        ),
      ) as Promise<StreamResponse<I, O>>
    },
  }

  const close = () => (owned ? client.close() : Promise.resolve())
  return { unary: transport.unary, stream: transport.stream, client, close, [Symbol.asyncDispose]: close }
}

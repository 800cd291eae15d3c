import { EventEmitter } from 'node:events'
import { fromBinary, toBinary, create, type DescMessage, type MessageShape } from '@bufbuild/protobuf'
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire'
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2'
import * as grpc from '@grpc/grpc-js'
import { pki } from '../helpers/pki.js'
import { EchoRequestSchema, EchoResponseSchema, EchoService, type EchoRequest, type EchoResponse } from './gen/echo_pb.js'

/**
 * A grpc-js service definition built from protobuf-es descriptors: grpc-js
 * (de)serializes with `@bufbuild/protobuf`'s `toBinary`/`fromBinary`.
 */
export function serviceDefinition<T extends GenServiceMethods>(service: GenService<T>): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {}
  for (const method of service.methods) {
    const input: DescMessage = method.input
    const output: DescMessage = method.output
    definition[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: method.methodKind === 'client_streaming' || method.methodKind === 'bidi_streaming',
      responseStream: method.methodKind === 'server_streaming' || method.methodKind === 'bidi_streaming',
      requestSerialize: (message) => Buffer.from(toBinary(input, message as MessageShape<DescMessage>)),
      requestDeserialize: (bytes) => fromBinary(input, bytes),
      responseSerialize: (message) => Buffer.from(toBinary(output, message as MessageShape<DescMessage>)),
      responseDeserialize: (bytes) => fromBinary(output, bytes),
    }
  }
  return definition
}

export interface GrpcServerOptions {
  host?: string
  /** TLS with the test certificates (valid for 127.0.0.1, localhost, *.test). Default true; false means h2c. */
  tls?: boolean
  /** grpc-js channel options, e.g. `{ 'grpc.max_connection_age_ms': 500 }`. */
  channelOptions?: grpc.ChannelOptions
}

/** What the interop suite needs from a server, whichever implementation it is. */
export interface GrpcTestServer {
  readonly host: string
  readonly port: number
  /** `https://127.0.0.1:port` or `http://…` for h2c. */
  readonly baseUrl: string
  /** Client connections seen (grpc-js peer addresses, one per connection). */
  readonly peers: Set<string>
  /** Calls started, per method. */
  readonly calls: Map<string, number>
  /**
   * `call` (method) when a call starts, `written` (index) for every server-streamed message written
   * (grpc-js), `blocked` (index) when a write hit backpressure (grpc-js), `cancelled` (method) when
   * a call was cancelled by the client or its deadline.
   */
  readonly events: EventEmitter
  close(): Promise<void>
}

const metadataLines = (metadata: grpc.Metadata): string[] =>
  Object.entries(metadata.toJSON())
    .flatMap(([key, values]) => values.map((value) => `${key}=${Buffer.isBuffer(value) ? `base64:${value.toString('base64')}` : value}`))
    .sort()

// Metadata values must stay small (they are HTTP/2 header fields) and ASCII (grpc-js rejects the rest).
export const short = (message: string) => message.slice(0, 64).replace(/[^\x20-\x7e]/g, '?')

/**
 * `google.rpc.Status` with one detail (an `EchoResponse` with the message), as
 * grpc-status-details-bin carries it; grpc-js passes it through as metadata.
 */
export function statusDetails(code: number, message: string): Buffer {
  const detail = toBinary(EchoResponseSchema, create(EchoResponseSchema, { message }))
  const any = new BinaryWriter()
    .tag(1, WireType.LengthDelimited)
    .string(`type.googleapis.com/${EchoResponseSchema.typeName}`)
    .tag(2, WireType.LengthDelimited)
    .bytes(detail)
    .finish()
  const status = new BinaryWriter()
    .tag(1, WireType.Varint)
    .int32(code)
    .tag(2, WireType.LengthDelimited)
    .string(message)
    .tag(3, WireType.LengthDelimited)
    .bytes(any)
    .finish()
  return Buffer.from(status)
}

/** Headers and trailers every call answers with, so tests can check they reach the client. */
function responseHeaders(message: string): grpc.Metadata {
  const metadata = new grpc.Metadata()
  metadata.set('x-echo-header', short(message) || 'none')
  metadata.set('x-echo-bin', Buffer.from([0, 1, 2, 255]))
  return metadata
}

function responseTrailers(message: string): grpc.Metadata {
  const metadata = new grpc.Metadata()
  metadata.set('x-echo-trailer', `done:${short(message)}`)
  return metadata
}

function failure(request: EchoRequest): Partial<grpc.StatusObject> | undefined {
  if (request.failWithCode === 0) return undefined
  const metadata = new grpc.Metadata()
  metadata.set('x-error-detail', `detail:${short(request.message)}`)
  if (request.withDetails) metadata.set('grpc-status-details-bin', statusDetails(request.failWithCode, request.message))
  return { code: request.failWithCode, details: request.message, metadata }
}

export const padding = (size: number) => new Uint8Array(size).fill(0x61)

/** What every kind of grpc-js server call has. */
type ServerCall = Pick<grpc.ServerUnaryCall<EchoRequest, EchoResponse>, 'getDeadline' | 'getPeer' | 'metadata'>

/** The call's deadline as the server saw it (from grpc-timeout), in ms from now; 0 for none. */
function deadlineMs(call: ServerCall): number {
  const deadline = call.getDeadline()
  if (!(deadline instanceof Date)) return Number.isFinite(deadline) ? Math.max(0, deadline - Date.now()) : 0
  return Math.max(0, deadline.getTime() - Date.now())
}

/** A grpc-js server for `EchoService` on loopback (TLS by default, h2c with `tls: false`). */
export async function startGrpcServer(options: GrpcServerOptions = {}): Promise<GrpcTestServer> {
  const host = options.host ?? '127.0.0.1'
  const tls = options.tls ?? true
  const server = new grpc.Server(options.channelOptions)
  const peers = new Set<string>()
  const calls = new Map<string, number>()
  const events = new EventEmitter()
  const seen = (method: string, call: { getPeer(): string }) => {
    peers.add(call.getPeer())
    calls.set(method, (calls.get(method) ?? 0) + 1)
    events.emit('call', method)
  }
  const reply = (request: EchoRequest, call: ServerCall, index = 0): EchoResponse =>
    create(EchoResponseSchema, {
      message: request.message,
      index,
      metadata: metadataLines(call.metadata),
      padding: padding(request.responseBytes),
      connection: call.getPeer(),
      deadlineMs: deadlineMs(call),
    })

  const handlers: grpc.UntypedServiceImplementation = {
    echo(call: grpc.ServerUnaryCall<EchoRequest, EchoResponse>, callback: grpc.sendUnaryData<EchoResponse>) {
      seen('echo', call)
      const request = call.request
      let timer: NodeJS.Timeout | undefined
      call.on('cancelled', () => {
        clearTimeout(timer)
        events.emit('cancelled', 'echo')
      })
      const answer = () => {
        call.sendMetadata(responseHeaders(request.message))
        const failed = failure(request)
        if (failed) callback(failed)
        else callback(null, reply(request, call), responseTrailers(request.message))
      }
      // The delay is the behaviour under test (a slow handler for deadlines), not synchronisation.
      if (request.delayMs > 0) timer = setTimeout(answer, request.delayMs)
      else answer()
    },

    async serverStream(call: grpc.ServerWritableStream<EchoRequest, EchoResponse>) {
      seen('serverStream', call)
      const request = call.request
      let cancelled = false
      call.on('cancelled', () => {
        cancelled = true
        events.emit('cancelled', 'serverStream')
      })
      call.sendMetadata(responseHeaders(request.message))
      for (let index = 0; index < request.count && !cancelled; index++) {
        const flushed = call.write(reply(request, call, index))
        events.emit('written', index)
        if (!flushed) {
          events.emit('blocked', index)
          await new Promise<void>((resolve) => {
            const done = () => {
              call.off('drain', done)
              call.off('cancelled', done)
              resolve()
            }
            call.on('drain', done)
            call.on('cancelled', done)
          })
        }
      }
      if (cancelled) return
      const failed = failure(request)
      if (failed) call.emit('error', failed)
      else call.end(responseTrailers(request.message))
    },

    clientStream(call: grpc.ServerReadableStream<EchoRequest, EchoResponse>, callback: grpc.sendUnaryData<EchoResponse>) {
      seen('clientStream', call)
      const received: EchoRequest[] = []
      call.on('data', (request: EchoRequest) => received.push(request))
      call.on('end', () => {
        const summary = create(EchoRequestSchema, {
          message: received.map((request) => request.message).join(','),
          responseBytes: received.at(-1)?.responseBytes ?? 0,
        })
        call.sendMetadata(responseHeaders(summary.message))
        const failed = received.find((request) => request.failWithCode !== 0)
        if (failed) callback(failure(failed)!)
        else callback(null, reply(summary, call, received.length), responseTrailers(summary.message))
      })
    },

    bidi(call: grpc.ServerDuplexStream<EchoRequest, EchoResponse>) {
      seen('bidi', call)
      let index = 0
      let last: EchoRequest | undefined
      call.sendMetadata(responseHeaders('bidi'))
      call.on('data', (request: EchoRequest) => {
        last = request
        const failed = failure(request)
        if (failed) call.emit('error', failed)
        else call.write(reply(request, call, index++))
      })
      call.on('end', () => call.end(responseTrailers(last?.message ?? 'bidi')))
    },
  }
  server.addService(serviceDefinition(EchoService), handlers)
  const credentials = tls
    ? grpc.ServerCredentials.createSsl(pki.ca, [{ cert_chain: pki.apiTest.cert, private_key: pki.apiTest.key }], false)
    : grpc.ServerCredentials.createInsecure()
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host}:0`, credentials, (error, bound) => (error ? reject(error) : resolve(bound)))
  })
  return {
    host,
    port,
    baseUrl: `${tls ? 'https' : 'http'}://${host}:${port}`,
    peers,
    calls,
    events,
    async close() {
      // Not tryShutdown: a call a test left open would hold it forever.
      server.forceShutdown()
    },
  }
}

import { EventEmitter } from 'node:events'
import http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import { create } from '@bufbuild/protobuf'
import { Code, ConnectError, createContextKey, createContextValues, encodeBinaryHeader, type HandlerContext, type ServiceImpl } from '@connectrpc/connect'
import { connectNodeAdapter } from '@connectrpc/connect-node'
import { pki } from '../helpers/pki.js'
import { EchoRequestSchema, EchoResponseSchema, EchoService, type EchoRequest, type EchoResponse } from './gen/echo_pb.js'
import { padding, short, type GrpcTestServer } from './server.js'

export interface ConnectServerOptions {
  /** TLS with the test certificates; false (the default) means h2c. */
  tls?: boolean
  /** Largest request message the server accepts (connect-node's readMaxBytes). */
  readMaxBytes?: number
  /**
   * Age out every connection as grpc-js' `grpc.max_connection_age_ms` does
   * (connect-node has no such option): GOAWAY with last-stream-id 2^31-1,
   * then a graceful close (node:http2 refuses streams that arrive after it),
   * then after `graceMs` the connection is destroyed.
   */
  maxConnectionAgeMs?: number
  graceMs?: number
}

const peerKey = createContextKey('')

const metadataLines = (context: HandlerContext): string[] => {
  const lines: string[] = []
  context.requestHeader.forEach((value, name) => {
    lines.push(`${name}=${name.endsWith('-bin') ? `base64:${Buffer.from(value, 'base64').toString('base64')}` : value}`)
  })
  return lines.sort()
}

function answerHeaders(context: HandlerContext, message: string): void {
  context.responseHeader.set('x-echo-header', short(message) || 'none')
  // connect-es writes binary metadata unpadded; grpc-js pads it: the client must read both.
  context.responseHeader.set('x-echo-bin', encodeBinaryHeader(new Uint8Array([0, 1, 2, 255])))
}

function failure(request: EchoRequest): ConnectError | undefined {
  if (request.failWithCode === 0) return undefined
  const details = request.withDetails ? [{ desc: EchoResponseSchema, value: { message: request.message } }] : []
  return new ConnectError(request.message, request.failWithCode as Code, { 'x-error-detail': `detail:${short(request.message)}` }, details)
}

/** A delay the call's cancellation cuts short (the behaviour under test, not synchronisation). */
function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms)
    signal.addEventListener('abort', () => {
      clearTimeout(timer)
      reject(signal.reason as Error)
    })
  })
}

/** A connect-node server (gRPC protocol only) for `EchoService` on loopback, with the grpc-js helper's behaviour. */
export async function startConnectServer(options: ConnectServerOptions = {}): Promise<GrpcTestServer> {
  const host = '127.0.0.1'
  const tls = options.tls ?? false
  const peers = new Set<string>()
  const calls = new Map<string, number>()
  const events = new EventEmitter()
  const seen = (method: string, context: HandlerContext) => {
    peers.add(context.values.get(peerKey))
    calls.set(method, (calls.get(method) ?? 0) + 1)
    events.emit('call', method)
    // A call that ends normally aborts its signal too, without a reason worth reporting.
    context.signal.addEventListener('abort', () => {
      const reason = ConnectError.from(context.signal.reason)
      if (reason.code === Code.Canceled || reason.code === Code.DeadlineExceeded) events.emit('cancelled', method)
    })
  }
  const reply = (request: EchoRequest, context: HandlerContext, index = 0): EchoResponse =>
    create(EchoResponseSchema, {
      message: request.message,
      index,
      metadata: metadataLines(context),
      padding: padding(request.responseBytes),
      connection: context.values.get(peerKey),
      deadlineMs: Math.max(0, Math.round(context.timeoutMs() ?? 0)),
    })
  const trailer = (context: HandlerContext, message: string) => context.responseTrailer.set('x-echo-trailer', `done:${short(message)}`)

  const impl: ServiceImpl<typeof EchoService> = {
    async echo(request, context) {
      seen('echo', context)
      if (request.delayMs > 0) await delay(request.delayMs, context.signal)
      answerHeaders(context, request.message)
      const failed = failure(request)
      if (failed) throw failed
      trailer(context, request.message)
      return reply(request, context)
    },
    async *serverStream(request, context) {
      seen('serverStream', context)
      answerHeaders(context, request.message)
      for (let index = 0; index < request.count; index++) {
        if (context.signal.aborted) return
        yield reply(request, context, index)
      }
      const failed = failure(request)
      if (failed) throw failed
      trailer(context, request.message)
    },
    async clientStream(requests, context) {
      seen('clientStream', context)
      const received: EchoRequest[] = []
      for await (const request of requests) received.push(request)
      const summary = create(EchoRequestSchema, {
        message: received.map((request) => request.message).join(','),
        responseBytes: received.at(-1)?.responseBytes ?? 0,
      })
      answerHeaders(context, summary.message)
      const failed = received.find((request) => request.failWithCode !== 0)
      if (failed) throw failure(failed)!
      trailer(context, summary.message)
      return reply(summary, context, received.length)
    },
    async *bidi(requests, context) {
      seen('bidi', context)
      answerHeaders(context, 'bidi')
      let index = 0
      let last: EchoRequest | undefined
      for await (const request of requests) {
        last = request
        const failed = failure(request)
        if (failed) throw failed
        yield reply(request, context, index++)
      }
      trailer(context, last?.message ?? 'bidi')
    },
  }

  const handler = connectNodeAdapter({
    grpc: true,
    grpcWeb: false,
    connect: false,
    readMaxBytes: options.readMaxBytes ?? 16 * 1024 * 1024,
    contextValues: (request) => createContextValues().set(peerKey, `${request.socket.remoteAddress}:${request.socket.remotePort}`),
    routes: (router) => router.service(EchoService, impl),
  })
  const server = tls ? http2.createSecureServer({ cert: pki.apiTest.cert, key: pki.apiTest.key }, handler) : http2.createServer(handler)
  const sessions = new Set<http2.ServerHttp2Session>()
  server.on('session', (session: http2.ServerHttp2Session) => {
    sessions.add(session)
    session.on('close', () => sessions.delete(session))
    const age = options.maxConnectionAgeMs
    if (age === undefined) return
    // ±10% jitter, as grpc-js applies it.
    const timer = setTimeout(() => {
      if (session.closed || session.destroyed) return
      session.goaway(http2.constants.NGHTTP2_NO_ERROR, 2 ** 31 - 1)
      session.close()
      setTimeout(() => session.destroy(), options.graceMs ?? 30_000).unref()
    }, age * (0.9 + Math.random() * 0.2))
    timer.unref()
    session.on('close', () => clearTimeout(timer))
  })
  await new Promise<void>((resolve) => server.listen(0, host, resolve))
  const { port } = server.address() as AddressInfo
  return {
    host,
    port,
    baseUrl: `${tls ? 'https' : 'http'}://${host}:${port}`,
    peers,
    calls,
    events,
    async close() {
      for (const session of sessions) session.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

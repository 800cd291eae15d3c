import { once } from 'node:events'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Code, ConnectError, createClient, type Client as ConnectClient } from '@connectrpc/connect'
import { create, type MessageInitShape } from '@bufbuild/protobuf'
import { Client } from '../lib/index.js'
import { compressionGzip, createGrpcTransport, createUniversalClient, toConnectError, type GrpcTransport } from '../lib/grpc.js'
import { ReadOnlyError, RefusedStreamError, ConnectionLostError, RequestAbortedError, ProtocolError } from '../lib/errors.js'
import { pki } from './helpers/pki.js'
import { EchoRequestSchema, EchoService, UnimplementedService } from './grpc/gen/echo_pb.js'
import { startGrpcServer, type GrpcTestServer } from './grpc/server.js'

type Echo = ConnectClient<typeof EchoService>
type EchoInit = MessageInitShape<typeof EchoRequestSchema>

/** An async iterable the test feeds one message at a time (for bidi and client streaming). */
function messageQueue<T>() {
  const items: T[] = []
  let ended = false
  let wake: (() => void) | undefined
  const iterable: AsyncIterable<T> = {
    async *[Symbol.asyncIterator]() {
      for (;;) {
        if (items.length > 0) yield items.shift()!
        else if (ended) return
        else await new Promise<void>((resolve) => (wake = resolve))
      }
    },
  }
  const notify = () => {
    const w = wake
    wake = undefined
    w?.()
  }
  return {
    iterable,
    push(item: T) {
      items.push(item)
      notify()
    },
    end() {
      ended = true
      notify()
    },
  }
}

async function* messages(...requests: EchoInit[]) {
  for (const request of requests) yield request
}

async function caught(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise
  } catch (error) {
    expect(error).toBeInstanceOf(ConnectError)
    return error as ConnectError
  }
  throw new Error('expected the call to fail')
}

describe('drainpipe/grpc against a grpc-js server (TLS)', () => {
  let server: GrpcTestServer
  let client: Client
  let transport: GrpcTransport
  let echo: Echo

  beforeAll(async () => {
    server = await startGrpcServer({ tls: true })
    client = new Client({ connect: { ca: pki.ca } })
    transport = createGrpcTransport({ baseUrl: server.baseUrl, client })
    echo = createClient(EchoService, transport)
  })

  afterAll(async () => {
    await transport.close()
    await client.close()
    await server.close()
  })

  it('unary: request metadata reaches the server, response headers and trailers reach the client', async () => {
    let header: Headers | undefined
    let trailer: Headers | undefined
    const response = await echo.echo(
      { message: 'hello' },
      {
        headers: { 'x-request-id': 'r-1', 'x-request-bin': 'AAEC/w' },
        onHeader: (value) => (header = value),
        onTrailer: (value) => (trailer = value),
      },
    )
    expect(response.message).toBe('hello')
    expect(response.metadata).toContain('x-request-id=r-1')
    expect(response.metadata).toContain('x-request-bin=base64:AAEC/w==')
    expect(response.metadata.some((line) => line.startsWith('user-agent=connect-es/'))).toBe(true)
    expect(header?.get('x-echo-header')).toBe('hello')
    expect(header?.get('x-echo-bin')).toBe('AAEC/w==')
    expect(trailer?.get('x-echo-trailer')).toBe('done:hello')
    expect(trailer?.get('grpc-status')).toBe('0')
    // The client is not transport-owned: close() leaves it open.
    await transport.close()
    expect((await echo.echo({ message: 'still open' })).message).toBe('still open')
  })

  it('server streaming: every message in order, then trailers', async () => {
    let trailer: Headers | undefined
    const indexes: number[] = []
    for await (const response of echo.serverStream({ message: 'stream', count: 25 }, { onTrailer: (value) => (trailer = value) })) {
      expect(response.message).toBe('stream')
      indexes.push(response.index)
    }
    expect(indexes).toEqual(Array.from({ length: 25 }, (_, i) => i))
    expect(trailer?.get('x-echo-trailer')).toBe('done:stream')
  })

  it('client streaming: the server sees every message', async () => {
    let header: Headers | undefined
    const response = await echo.clientStream(messages({ message: 'a' }, { message: 'b' }, { message: 'c' }), {
      onHeader: (value) => (header = value),
    })
    expect(response.message).toBe('a,b,c')
    expect(response.index).toBe(3)
    expect(header?.get('x-echo-header')).toBe('a,b,c')
  })

  it('client streaming: a large upload is sent with flow control and arrives whole', async () => {
    const big = 'x'.repeat(64 * 1024)
    async function* upload() {
      for (let i = 0; i < 64; i++) yield { message: `${i}:${big}` }
    }
    const response = await echo.clientStream(upload())
    const parts = response.message.split(',')
    expect(parts).toHaveLength(64)
    expect(parts.map((part) => Number(part.split(':')[0]))).toEqual(Array.from({ length: 64 }, (_, i) => i))
  })

  it('bidi: full duplex, each response arrives before the next request is sent', async () => {
    const input = messageQueue<EchoInit>()
    const stream = echo.bidi(input.iterable)[Symbol.asyncIterator]()
    for (const word of ['one', 'two', 'three']) {
      input.push({ message: word })
      const next = await stream.next()
      expect(next.done).toBe(false)
      expect(next.value?.message).toBe(word)
    }
    input.end()
    expect((await stream.next()).done).toBe(true)
  })

  it('deadline exceeded: the call fails with DeadlineExceeded and the server sees it cancelled', async () => {
    const cancelled = once(server.events, 'cancelled')
    const started = Date.now()
    const error = await caught(echo.echo({ message: 'slow', delayMs: 10_000 }, { timeoutMs: 200 }))
    expect(error.code).toBe(Code.DeadlineExceeded)
    expect(Date.now() - started).toBeLessThan(5_000)
    await cancelled
  })

  it('cancel: aborting a server stream mid-way fails it with Canceled and the server sees the cancel', async () => {
    const controller = new AbortController()
    const cancelled = once(server.events, 'cancelled')
    const received: number[] = []
    const error = await caught(
      (async () => {
        for await (const response of echo.serverStream({ count: 1_000_000, responseBytes: 1024 }, { signal: controller.signal })) {
          received.push(response.index)
          if (received.length === 3) controller.abort()
        }
      })(),
    )
    expect(error.code).toBe(Code.Canceled)
    expect(received).toEqual([0, 1, 2])
    await cancelled
  })

  it.each([
    [Code.InvalidArgument, 'bad argument'],
    [Code.NotFound, 'no such thing'],
    [Code.PermissionDenied, 'not for you'],
    [Code.ResourceExhausted, 'slow down'],
    [Code.Unavailable, 'try later'],
    [Code.Internal, 'it broke: ünïcode ✓'],
  ])('status code %i with its message and error metadata (unary)', async (code, message) => {
    const error = await caught(echo.echo({ message, failWithCode: code }))
    expect(error.code).toBe(code)
    expect(error.rawMessage).toBe(message)
    // grpc-js metadata is ASCII: the server helper replaces the rest with '?'.
    expect(error.metadata.get('x-error-detail')).toBe(`detail:${message.replace(/[^\x20-\x7e]/g, '?')}`)
  })

  it('trailers-only response: UNIMPLEMENTED for a service the server does not have', async () => {
    const missing = createClient(UnimplementedService, transport)
    const error = await caught(missing.missing({ message: 'anyone?' }))
    expect(error.code).toBe(Code.Unimplemented)
  })

  it('status code after streamed messages (server streaming)', async () => {
    const received: number[] = []
    const error = await caught(
      (async () => {
        for await (const response of echo.serverStream({ message: 'late failure', count: 2, failWithCode: Code.FailedPrecondition })) {
          received.push(response.index)
        }
      })(),
    )
    expect(received).toEqual([0, 1])
    expect(error.code).toBe(Code.FailedPrecondition)
    expect(error.rawMessage).toBe('late failure')
  })

  it('status code from client streaming and bidi', async () => {
    const clientStreamError = await caught(echo.clientStream(messages({ message: 'ok' }, { message: 'nope', failWithCode: Code.Aborted })))
    expect(clientStreamError.code).toBe(Code.Aborted)
    expect(clientStreamError.rawMessage).toBe('nope')
    const bidiError = await caught(
      (async () => {
        for await (const _ of echo.bidi(messages({ message: 'fine' }, { message: 'bidi failure', failWithCode: Code.OutOfRange }))) {
          // drain
        }
      })(),
    )
    expect(bidiError.code).toBe(Code.OutOfRange)
    expect(bidiError.rawMessage).toBe('bidi failure')
  })

  it('backpressure: a reader that stops reading stops the server (HTTP/2 flow control), then gets everything', async () => {
    const total = 200
    let written = 0
    const onWritten = () => written++
    server.events.on('written', onWritten)
    try {
      const blocked = once(server.events, 'blocked')
      const stream = echo.serverStream({ message: 'big', count: total, responseBytes: 64 * 1024 })[Symbol.asyncIterator]()
      expect((await stream.next()).value?.index).toBe(0)
      await blocked
      // Round trips on the same connection give the server every chance to run ahead; it must not.
      const before = written
      for (let i = 0; i < 20; i++) await echo.echo({ message: 'ping' })
      expect(written).toBe(before)
      expect(written).toBeLessThan(total / 2)
      let count = 1
      for (let next = await stream.next(); !next.done; next = await stream.next()) {
        expect(next.value.index).toBe(count)
        expect(next.value.padding.length).toBe(64 * 1024)
        count++
      }
      expect(count).toBe(total)
    } finally {
      server.events.off('written', onWritten)
    }
  })

  it("the client's headersTimeout and bodyTimeout do not cut gRPC calls short (deadlines are Connect's)", async () => {
    const impatient = new Client({ connect: { ca: pki.ca }, headersTimeout: 50, bodyTimeout: 50 })
    try {
      const slow = createClient(EchoService, createGrpcTransport({ baseUrl: server.baseUrl, client: impatient }))
      expect((await slow.echo({ message: 'patience', delayMs: 300 })).message).toBe('patience')
    } finally {
      await impatient.close()
    }
  })

  it('gzip: compressed requests and responses', async () => {
    const compressed = createClient(
      EchoService,
      createGrpcTransport({ baseUrl: server.baseUrl, client, sendCompression: compressionGzip, acceptCompression: [compressionGzip], compressMinBytes: 1 }),
    )
    const response = await compressed.echo({ message: 'z'.repeat(10_000) })
    expect(response.message).toBe('z'.repeat(10_000))
  })
})

describe('drainpipe/grpc over h2c, with a transport-owned client', () => {
  it('all four call kinds, then close() closes the owned client', async () => {
    const server = await startGrpcServer({ tls: false })
    const transport = createGrpcTransport({ baseUrl: server.baseUrl })
    const echo = createClient(EchoService, transport)
    try {
      expect((await echo.echo({ message: 'plain' })).message).toBe('plain')
      const streamed: number[] = []
      for await (const response of echo.serverStream({ count: 3 })) streamed.push(response.index)
      expect(streamed).toEqual([0, 1, 2])
      expect((await echo.clientStream(messages({ message: 'x' }, { message: 'y' }))).message).toBe('x,y')
      const bidi: string[] = []
      for await (const response of echo.bidi(messages({ message: 'p' }, { message: 'q' }))) bidi.push(response.message)
      expect(bidi).toEqual(['p', 'q'])
      expect(Object.keys(transport.client.stats().origins)).toEqual([server.baseUrl])
    } finally {
      await transport.close()
      await server.close()
    }
    const error = await caught(echo.echo({ message: 'after close' }))
    expect(error.code).toBe(Code.Unavailable)
  })
})

describe('drainpipe/grpc with grpc.max_connection_age_ms = 500', () => {
  it('1,000 calls at concurrency 50 across many connection recycles: 0 failed', async () => {
    const server = await startGrpcServer({ tls: true, channelOptions: { 'grpc.max_connection_age_ms': 500 } })
    const client = new Client({ connect: { ca: pki.ca } })
    const transport = createGrpcTransport({ baseUrl: server.baseUrl, client })
    const echo = createClient(EchoService, transport)
    const total = 1_000
    const concurrency = 50
    const failures: { index: number; error: unknown }[] = []
    let next = 0
    const call = async (index: number) => {
      // Mostly unary; every fourth a streaming kind, so replays of streamed request bodies are exercised too.
      // The server takes ~100 ms per call, so the run lasts several connection ages (≥ 1.7 s) even on a fast machine.
      const delayMs = index % 7 === 0 ? 150 : 100
      const message = `call-${index}`
      switch (index % 8) {
        case 3: {
          const response = await echo.clientStream(messages({ message, delayMs }, { message: 'tail' }))
          expect(response.message).toBe(`${message},tail`)
          return
        }
        case 5: {
          const received: string[] = []
          for await (const response of echo.serverStream({ message, count: 3 })) received.push(response.message)
          expect(received).toEqual([message, message, message])
          return
        }
        case 7: {
          const received: string[] = []
          for await (const response of echo.bidi(messages({ message }, { message: 'again' }))) received.push(response.message)
          expect(received).toEqual([message, 'again'])
          return
        }
        default: {
          const response = await echo.echo(create(EchoRequestSchema, { message, delayMs }))
          expect(response.message).toBe(message)
        }
      }
    }
    const worker = async () => {
      while (next < total) {
        const index = next++
        try {
          await call(index)
        } catch (error) {
          failures.push({ index, error })
        }
      }
    }
    try {
      await Promise.all(Array.from({ length: concurrency }, worker))
      expect(failures.map(({ index, error }) => `${index}: ${String(error)}`)).toEqual([])
      const calls = [...server.calls.values()].reduce((sum, count) => sum + count, 0)
      expect(calls).toBeGreaterThanOrEqual(total)
      // Each grpc-js max-age GOAWAY forced a new connection (a new client port).
      expect(server.peers.size).toBeGreaterThanOrEqual(3)
      expect(client.stats().goaways).toBeGreaterThanOrEqual(2)
    } finally {
      await client.close()
      await server.close()
    }
  }, 60_000)
})

describe('createUniversalClient: calls refused after their body was sent are replayed', () => {
  let server: http2.Http2Server
  let origin: string
  let received: string[]
  let refuseNext: number
  let lastHeaders: http2.IncomingHttpHeaders | undefined

  beforeAll(async () => {
    server = http2.createServer()
    server.on('stream', (stream, headers) => {
      lastHeaders = headers
      // Closing with REFUSED_STREAM makes node:http2 emit it as the server stream's error too.
      stream.on('error', () => {})
      const chunks: Buffer[] = []
      stream.on('data', (chunk: Buffer) => chunks.push(chunk))
      stream.on('end', () => {
        const body = Buffer.concat(chunks).toString()
        received.push(body)
        // The whole body was read, then refused: the server provably did not process it.
        if (refuseNext-- > 0) return stream.close(http2.constants.NGHTTP2_REFUSED_STREAM)
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true })
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'x-attempt': String(received.length) }))
        stream.end(`echo:${body}`)
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })

  const send = async (httpClient: ReturnType<typeof createUniversalClient>, pulled: string[], chunks = ['a', 'b', 'c']) => {
    async function* body() {
      for (const chunk of chunks) {
        pulled.push(chunk)
        yield new TextEncoder().encode(chunk)
      }
    }
    const response = await httpClient({ url: `${origin}/svc/Method`, method: 'POST', header: new Headers({ te: 'trailers' }), body: body() })
    let text = ''
    for await (const chunk of response.body) text += new TextDecoder().decode(chunk)
    return { status: response.status, text, trailer: response.trailer }
  }

  it('replays the whole body once on a new attempt; the source is read once', async () => {
    received = []
    refuseNext = 1
    const retries: unknown[] = []
    const onRetry = (message: unknown) => retries.push(message)
    subscribe('drainpipe:request:retry', onRetry)
    const client = new Client({ h2c: true })
    try {
      const pulled: string[] = []
      const response = await send(createUniversalClient(client), pulled)
      expect(response).toMatchObject({ status: 200, text: 'echo:abc' })
      expect(response.trailer.get('x-attempt')).toBe('2')
      expect(received).toEqual(['abc', 'abc'])
      expect(pulled).toEqual(['a', 'b', 'c'])
      // gRPC requires it; drainpipe's header validation must keep it.
      expect(lastHeaders?.te).toBe('trailers')
      expect(retries).toEqual([expect.objectContaining({ path: '/svc/Method', attempt: 2, reason: 'DRAINPIPE_REFUSED_STREAM' })])
      expect(client.stats().retries).toBe(1)
    } finally {
      unsubscribe('drainpipe:request:retry', onRetry)
      await client.close()
    }
  })

  it("a transport-owned client replays request bodies up to gRPC core's 256 KiB (the core default is 64 KiB)", async () => {
    const transport = createGrpcTransport({ baseUrl: origin })
    try {
      const chunks = Array.from({ length: 200 }, (_, index) => String(index % 10).repeat(1024)) // 200 KiB
      received = []
      refuseNext = 1
      const response = await send(createUniversalClient(transport.client), [], chunks)
      expect(response.status).toBe(200)
      expect(received.map((body) => body.length)).toEqual([200 * 1024, 200 * 1024])
      // "Up to": a body above 256 KiB is not replayed.
      received = []
      refuseNext = 1
      const tooBig = await caught(send(createUniversalClient(transport.client), [], [...chunks, ...chunks]))
      expect(tooBig.cause).toBeInstanceOf(RefusedStreamError)
      expect(received.map((body) => body.length)).toEqual([400 * 1024])
    } finally {
      await transport.close()
    }
  })

  it("gives up after the client's `retries`, and does not replay a body larger than its `retryBufferSize`", async () => {
    const client = new Client({ h2c: true, retries: 2 })
    const small = new Client({ h2c: true, retryBufferSize: 2 })
    try {
      received = []
      refuseNext = 10
      const exhausted = await caught(send(createUniversalClient(client), []))
      expect(exhausted.code).toBe(Code.Unavailable)
      expect(received).toHaveLength(3)

      received = []
      refuseNext = 1
      const tooBig = await caught(send(createUniversalClient(small), []))
      expect(tooBig.code).toBe(Code.Unavailable)
      expect(tooBig.cause).toBeInstanceOf(RefusedStreamError)
      expect(received).toEqual(['abc'])
    } finally {
      await client.close()
      await small.close()
    }
  })
})

describe('toConnectError', () => {
  it('maps drainpipe failures to Connect codes', () => {
    expect(toConnectError(new ReadOnlyError()).code).toBe(Code.Unavailable)
    expect(toConnectError(new RefusedStreamError()).code).toBe(Code.Unavailable)
    expect(toConnectError(new ConnectionLostError('gone')).code).toBe(Code.Unavailable)
    expect(toConnectError(new RequestAbortedError()).code).toBe(Code.Canceled)
    expect(toConnectError(new ProtocolError('reset', { http2Code: 8 })).code).toBe(Code.Canceled)
    expect(toConnectError(new ProtocolError('reset', { http2Code: 11 })).code).toBe(Code.ResourceExhausted)
    expect(toConnectError(new ProtocolError('reset', { http2Code: 2 })).code).toBe(Code.Internal)
    expect(toConnectError(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' })).code).toBe(Code.Unavailable)
    const passthrough = new ConnectError('mine', Code.DataLoss)
    expect(toConnectError(passthrough)).toBe(passthrough)
    expect(toConnectError(new ReadOnlyError()).cause).toBeInstanceOf(ReadOnlyError)
  })
})

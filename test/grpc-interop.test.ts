/**
 * drainpipe/grpc against real gRPC servers on loopback: grpc-js, and
 * connect-node speaking the gRPC protocol. The same suite runs against each.
 */
import { once } from 'node:events'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { create } from '@bufbuild/protobuf'
import { Code, createClient, decodeBinaryHeader, type Client as ConnectClient, type Interceptor } from '@connectrpc/connect'
import type { Compression } from '@connectrpc/connect/protocol'
import { compressionGzip, createGrpcTransport, type GrpcTransport, type GrpcTransportOptions } from '../lib/grpc.js'
import { pki } from './helpers/pki.js'
import { EchoRequestSchema, EchoResponseSchema, EchoService, UnimplementedService } from './grpc/gen/echo_pb.js'
import { startGrpcServer, type GrpcTestServer } from './grpc/server.js'
import { startConnectServer } from './grpc/connect-server.js'
import { caught, messageQueue, messages } from './grpc/helpers.js'

type Echo = ConnectClient<typeof EchoService>

const MiB = 1024 * 1024

interface ServerKind {
  name: string
  /** A server whose limits allow 4 MiB messages; `smallLimit`: one that accepts at most 1 KiB per message. */
  start(options: { smallLimit?: boolean }): Promise<GrpcTestServer>
  /** grpc-js servers read compressed messages but never compress their own (grpc-js 1.14); connect-node compresses answers of 1 KiB and more. */
  compressesResponses: boolean
}

const kinds: ServerKind[] = [
  {
    name: 'grpc-js server (TLS)',
    compressesResponses: false,
    start: ({ smallLimit }) =>
      startGrpcServer({
        tls: true,
        channelOptions: { 'grpc.max_receive_message_length': smallLimit ? 1024 : 16 * MiB, 'grpc.max_send_message_length': 16 * MiB },
      }),
  },
  {
    name: 'connect-node server (h2c)',
    compressesResponses: true,
    start: ({ smallLimit }) => startConnectServer({ tls: false, readMaxBytes: smallLimit ? 1024 : 16 * MiB }),
  },
]

const transportFor = (server: GrpcTestServer, options: Omit<GrpcTransportOptions, 'baseUrl'> = {}): GrpcTransport =>
  createGrpcTransport({ baseUrl: server.baseUrl, ...(options.client ? {} : { clientOptions: { connect: { ca: pki.ca } } }), ...options })

/** A gzip that counts what it did, to see compression happen on the wire. */
function countingGzip() {
  const counts = { compressed: 0, decompressed: 0 }
  const compression: Compression = {
    name: 'gzip',
    compress: (bytes) => {
      counts.compressed++
      return compressionGzip.compress(bytes)
    },
    decompress: (bytes, readMaxBytes) => {
      counts.decompressed++
      return compressionGzip.decompress(bytes, readMaxBytes)
    },
  }
  return { compression, counts }
}

describe.each(kinds)('drainpipe/grpc against a $name', (kind) => {
  let server: GrpcTestServer
  let transport: GrpcTransport
  let echo: Echo

  beforeAll(async () => {
    server = await kind.start({})
    transport = transportFor(server)
    echo = createClient(EchoService, transport)
  })

  afterAll(async () => {
    await transport.close()
    await server.close()
  })

  it('unary: ASCII and binary metadata reach the server; headers and trailers reach the client', async () => {
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
    expect(response.metadata.some((line) => line.startsWith('user-agent=grpc-node-drainpipe'))).toBe(true)
    expect(header?.get('x-echo-header')).toBe('hello')
    // grpc-js pads base64, connect-es does not: both decode.
    expect([...decodeBinaryHeader(header!.get('x-echo-bin')!)]).toEqual([0, 1, 2, 255])
    expect(trailer?.get('x-echo-trailer')).toBe('done:hello')
    expect(trailer?.get('grpc-status')).toBe('0')
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
    const input = messageQueue<{ message: string }>()
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

  it('the deadline reaches the server as grpc-timeout', async () => {
    const response = await echo.echo({ message: 'deadline' }, { timeoutMs: 5_000 })
    expect(response.deadlineMs).toBeGreaterThan(4_000)
    expect(response.deadlineMs).toBeLessThanOrEqual(5_000)
    expect((await echo.echo({ message: 'none' })).deadlineMs).toBe(0)
  })

  it('deadline exceeded: the call fails with DeadlineExceeded in time and the server sees the call end', async () => {
    const cancelled = once(server.events, 'cancelled')
    const started = performance.now()
    const error = await caught(echo.echo({ message: 'slow', delayMs: 10_000 }, { timeoutMs: 200 }))
    expect(error.code).toBe(Code.DeadlineExceeded)
    expect(performance.now() - started).toBeLessThan(5_000)
    await cancelled
  })

  it('client cancellation: aborting a server stream mid-way fails it with Canceled and the server sees the cancel', async () => {
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

  it('a reader that returns the response iterator early cancels the call', async () => {
    const cancelled = once(server.events, 'cancelled')
    const response = await transport.stream(EchoService.method.serverStream, undefined, undefined, undefined, messages({ count: 1_000_000, responseBytes: 1024 }))
    const iterator = response.message[Symbol.asyncIterator]()
    expect((await iterator.next()).value?.index).toBe(0)
    await iterator.return?.()
    expect((await iterator.next()).done).toBe(true)
    await cancelled
  })

  it('a signal aborted before the call: Canceled with its reason, nothing sent', async () => {
    const before = server.calls.get('echo') ?? 0
    const reason = new Error('changed my mind')
    const error = await caught(echo.echo({ message: 'never' }, { signal: AbortSignal.abort(reason) }))
    expect(error.code).toBe(Code.Canceled)
    expect(error.cause).toBe(reason)
    expect(server.calls.get('echo') ?? 0).toBe(before)
  })

  it.each([
    [Code.Canceled, 'the server cancelled'],
    [Code.InvalidArgument, 'bad argument'],
    [Code.NotFound, 'no such thing'],
    [Code.PermissionDenied, 'not for you'],
    [Code.ResourceExhausted, 'slow down'],
    [Code.Unavailable, 'try later'],
    [Code.Internal, 'it broke: ünïcode ✓ 100%'],
  ])('status %i with its message and error metadata', async (code, message) => {
    const error = await caught(echo.echo({ message, failWithCode: code }))
    expect(error.code).toBe(code)
    expect(error.rawMessage).toBe(message)
    expect(error.metadata.get('x-error-detail')).toBe(`detail:${message.replace(/[^\x20-\x7e]/g, '?').slice(0, 64)}`)
  })

  it('error details from grpc-status-details-bin', async () => {
    const error = await caught(echo.echo({ message: 'with details', failWithCode: Code.FailedPrecondition, withDetails: true }))
    expect(error.code).toBe(Code.FailedPrecondition)
    expect(error.rawMessage).toBe('with details')
    const details = error.findDetails(EchoResponseSchema)
    expect(details.map((detail) => detail.message)).toEqual(['with details'])
  })

  it('trailers-only response: UNIMPLEMENTED for a service the server does not have', async () => {
    const missing = createClient(UnimplementedService, transport)
    const error = await caught(missing.missing({ message: 'anyone?' }))
    expect(error.code).toBe(Code.Unimplemented)
  })

  it('status after streamed messages (server streaming)', async () => {
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

  it('status from client streaming and bidi', async () => {
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

  it('4 MiB messages both ways: unary, server streaming and client streaming', async () => {
    const big = 'x'.repeat(4 * MiB)
    expect((await echo.echo({ message: big })).message).toBe(big)
    let count = 0
    for await (const response of echo.serverStream({ count: 3, responseBytes: 4 * MiB })) {
      expect(response.padding.length).toBe(4 * MiB)
      count++
    }
    expect(count).toBe(3)
    const summary = await echo.clientStream(messages({ message: big }, { message: big }))
    expect(summary.message.length).toBe(2 * big.length + 1)
  })

  it('readMaxBytes: a larger response fails with ResourceExhausted; the transport goes on', async () => {
    const limited = transportFor(server, { readMaxBytes: 64 * 1024 })
    try {
      const small = createClient(EchoService, limited)
      const error = await caught(small.echo({ message: 'big answer', responseBytes: 100 * 1024 }))
      expect(error.code).toBe(Code.ResourceExhausted)
      const streamed: number[] = []
      const streamError = await caught(
        (async () => {
          for await (const response of small.serverStream({ count: 5, responseBytes: 1024 })) {
            streamed.push(response.index)
            if (streamed.length === 2) break
          }
          for await (const _ of small.serverStream({ count: 1, responseBytes: 1 * MiB })) {
            // the one message is over the limit
          }
        })(),
      )
      expect(streamError.code).toBe(Code.ResourceExhausted)
      expect((await small.echo({ message: 'small answer' })).message).toBe('small answer')
    } finally {
      await limited.close()
    }
  })

  it('writeMaxBytes: a larger request fails with ResourceExhausted before anything is sent', async () => {
    const limited = transportFor(server, { writeMaxBytes: 1024 })
    try {
      const small = createClient(EchoService, limited)
      const before = { echo: server.calls.get('echo') ?? 0, clientStream: server.calls.get('clientStream') ?? 0 }
      const error = await caught(small.echo({ message: 'y'.repeat(2048) }))
      expect(error.code).toBe(Code.ResourceExhausted)
      expect(server.calls.get('echo') ?? 0).toBe(before.echo)
      // In a stream the message over the limit fails the call; the ones before it were sent.
      const streamError = await caught(small.clientStream(messages({ message: 'fits' }, { message: 'y'.repeat(2048) })))
      expect(streamError.code).toBe(Code.ResourceExhausted)
      expect((await small.echo({ message: 'fits' })).message).toBe('fits')
    } finally {
      await limited.close()
    }
  })

  it("the server's own receive limit answers ResourceExhausted", async () => {
    const strict = await kind.start({ smallLimit: true })
    const client = transportFor(strict)
    try {
      const error = await caught(createClient(EchoService, client).echo({ message: 'z'.repeat(4096) }))
      expect(error.code).toBe(Code.ResourceExhausted)
    } finally {
      await client.close()
      await strict.close()
    }
  })

  it(`gzip: compressed requests${kind.compressesResponses ? ', compressed responses' : ''}`, async () => {
    const { compression, counts } = countingGzip()
    const gzipped = transportFor(server, { sendCompression: compression, acceptCompression: [compression], compressMinBytes: 1 })
    const answers = kind.compressesResponses ? 1 : 0
    try {
      const client = createClient(EchoService, gzipped)
      const response = await client.echo({ message: 'z'.repeat(10_000), responseBytes: 4096 })
      // The server could read it: the flag, the grpc-encoding and the bytes agree.
      expect(response.message).toBe('z'.repeat(10_000))
      expect(counts.compressed).toBe(1)
      expect(counts.decompressed).toBe(answers)
      let streamed = 0
      for await (const message of client.serverStream({ count: 5, responseBytes: 4096 })) {
        expect(message.padding.length).toBe(4096)
        streamed++
      }
      expect(streamed).toBe(5)
      expect(counts.decompressed).toBe(6 * answers)
      expect((await client.clientStream(messages({ message: 'p'.repeat(2000) }, { message: 'q' }))).message).toBe(`${'p'.repeat(2000)},q`)
      expect(counts.compressed).toBe(4)
    } finally {
      await gzipped.close()
    }
  })

  it('acceptCompression: [] asks for uncompressed answers; an answer in the compression the client sent is still read', async () => {
    const plain = transportFor(server, { acceptCompression: [] })
    const { compression, counts } = countingGzip()
    const sending = transportFor(server, { acceptCompression: [], sendCompression: compression, compressMinBytes: 1 })
    try {
      const response = await createClient(EchoService, plain).echo({ message: 'w'.repeat(4096), responseBytes: 4096 })
      expect(response.padding.length).toBe(4096)
      expect(response.metadata.some((line) => line.startsWith('grpc-accept-encoding='))).toBe(false)
      // connect-node answers in the request's compression when the client names none it accepts.
      const answer = await createClient(EchoService, sending).echo({ message: 'w'.repeat(4096), responseBytes: 4096 })
      expect(answer.padding.length).toBe(4096)
      expect(counts.compressed).toBe(1)
    } finally {
      await plain.close()
      await sending.close()
    }
  })

  it('interceptors see and change headers, see the response, for unary and streaming calls', async () => {
    const seen: string[] = []
    const interceptor: Interceptor = (next) => async (request) => {
      request.header.set('x-intercepted', request.stream ? 'stream' : 'unary')
      seen.push(`${request.method.name} ${request.header.get('content-type')} ${request.header.get('grpc-timeout') ?? '-'}`)
      const response = await next(request)
      seen.push(`${response.method.name} ${response.header.get('x-echo-header')}`)
      return response
    }
    const intercepted = transportFor(server, { interceptors: [interceptor] })
    try {
      const client = createClient(EchoService, intercepted)
      const unary = await client.echo({ message: 'via interceptor' }, { timeoutMs: 10_000 })
      expect(unary.metadata).toContain('x-intercepted=unary')
      const streamed: string[] = []
      for await (const response of client.serverStream({ message: 'streamed', count: 2 })) streamed.push(response.metadata.find((line) => line.startsWith('x-intercepted'))!)
      expect(streamed).toEqual(['x-intercepted=stream', 'x-intercepted=stream'])
      expect(seen).toEqual(['Echo application/grpc 10000m', 'Echo via interceptor', 'ServerStream application/grpc -', 'ServerStream streamed'])
      const error = await caught(client.echo({ message: 'slow', delayMs: 10_000 }, { timeoutMs: 100 }))
      expect(error.code).toBe(Code.DeadlineExceeded)
    } finally {
      await intercepted.close()
    }
  })
})

describe('drainpipe/grpc: the JSON format (application/grpc+json) against a connect-node server', () => {
  it('unary and streaming calls', async () => {
    const server = await startConnectServer()
    const transport = createGrpcTransport({ baseUrl: server.baseUrl, useBinaryFormat: false })
    try {
      const echo = createClient(EchoService, transport)
      const response = await echo.echo({ message: 'json' })
      expect(response.message).toBe('json')
      expect(response.metadata).toContain('content-type=application/grpc+json')
      const indexes: number[] = []
      for await (const message of echo.serverStream({ count: 3 })) indexes.push(message.index)
      expect(indexes).toEqual([0, 1, 2])
    } finally {
      await transport.close()
      await server.close()
    }
  })
})

/**
 * Calls of every kind until the server has aged out `connections` connections
 * (it saw that many client connections) and `minCalls` calls completed; some
 * calls take a while at the server so that GOAWAYs find calls in flight.
 */
async function loadAcrossAges(echo: Echo, server: GrpcTestServer, { connections, minCalls, concurrency }: { connections: number; minCalls: number; concurrency: number }) {
  const failures: string[] = []
  let started = 0
  let completed = 0
  const call = async (index: number) => {
    const message = `call-${index}`
    const delayMs = index % 5 === 0 ? 20 : 0
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
    while (completed < minCalls || server.peers.size < connections) {
      const index = started++
      try {
        await call(index)
      } catch (error) {
        failures.push(`${index}: ${String(error)}`)
      }
      completed++
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return { failures, completed }
}

describe.each([
  { name: 'grpc-js (h2c)', ageMs: 100, start: (ageMs: number) => startGrpcServer({ tls: false, channelOptions: { 'grpc.max_connection_age_ms': ageMs, 'grpc.max_connection_age_grace_ms': 10_000 } }) },
  { name: 'grpc-js (TLS)', ageMs: 300, start: (ageMs: number) => startGrpcServer({ tls: true, channelOptions: { 'grpc.max_connection_age_ms': ageMs, 'grpc.max_connection_age_grace_ms': 10_000 } }) },
  { name: 'grpc-js (h2c)', ageMs: 1_000, start: (ageMs: number) => startGrpcServer({ tls: false, channelOptions: { 'grpc.max_connection_age_ms': ageMs } }) },
  { name: 'connect-node (h2c, aged like grpc-js)', ageMs: 100, start: (ageMs: number) => startConnectServer({ maxConnectionAgeMs: ageMs, graceMs: 10_000 }) },
])("a $name server's max connection age of $ageMs ms, under load", ({ ageMs, start }) => {
  it('0 failed calls across the ages, every call kind', async () => {
    const server = await start(ageMs)
    const transport = transportFor(server)
    try {
      const echo = createClient(EchoService, transport)
      const { failures, completed } = await loadAcrossAges(echo, server, { connections: 4, minCalls: 1_000, concurrency: 30 })
      expect(failures).toEqual([])
      expect(completed).toBeGreaterThanOrEqual(1_000)
      expect(transport.client.stats().goaways).toBeGreaterThanOrEqual(3)
    } finally {
      await transport.close()
      await server.close()
    }
  }, 60_000)
})

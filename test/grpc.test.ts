/**
 * drainpipe/grpc's own behaviour: transparent retries, protocol errors from
 * scripted servers, framing, options, keepalive. The interop suite against
 * grpc-js and connect-node servers is test/grpc-interop.test.ts.
 */
import { once } from 'node:events'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Code, ConnectError, createClient, type Client as ConnectClient, type Interceptor } from '@connectrpc/connect'
import { create, fromBinary, toBinary } from '@bufbuild/protobuf'
import { Client } from '../lib/index.js'
import { compressionGzip, createGrpcTransport, createUniversalClient, grpcKeepAlive, toConnectError, type GrpcTransport } from '../lib/grpc.js'
import { MessageDecoder } from '../lib/grpc/framing.js'
import { grpcTimeout } from '../lib/grpc/metadata.js'
import { InvalidOptionError, ReadOnlyError, RefusedStreamError, ConnectionLostError, RequestAbortedError, ProtocolError } from '../lib/errors.js'
import { pki } from './helpers/pki.js'
import { tableLookup } from './helpers/h2-server.js'
import { ErrorCode, Flag, frames, startHostileServer, type HostileServer } from './hostile/server.js'
import { ManualClock } from './helpers/manual-clock.js'
import { EchoRequestSchema, EchoResponseSchema, EchoService } from './grpc/gen/echo_pb.js'
import { startGrpcServer, type GrpcTestServer } from './grpc/server.js'
import { caught, messages } from './grpc/helpers.js'

type Echo = ConnectClient<typeof EchoService>

const { NGHTTP2_REFUSED_STREAM, NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM } = http2.constants

/** One gRPC message with its prefix. */
function framed(bytes: Uint8Array, flags = 0): Buffer {
  const prefix = Buffer.alloc(5)
  prefix[0] = flags
  prefix.writeUInt32BE(bytes.length, 1)
  return Buffer.concat([prefix, bytes])
}

const answer = (message: string) => framed(toBinary(EchoResponseSchema, create(EchoResponseSchema, { message })))

/** The request messages in a request body. */
function requestMessages(body: Buffer): string[] {
  const found: string[] = []
  for (let offset = 0; offset + 5 <= body.length; ) {
    const length = body.readUInt32BE(offset + 1)
    found.push(fromBinary(EchoRequestSchema, body.subarray(offset + 5, offset + 5 + length)).message)
    offset += 5 + length
  }
  return found
}

/** A node:http2 server (h2c) that answers every stream with `script`, after reading the whole request. */
async function scriptedServer(script: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, body: Buffer) => void) {
  const server = http2.createServer()
  const sessions = new Set<http2.ServerHttp2Session>()
  let accepted = 0
  server.on('session', (session: http2.ServerHttp2Session) => {
    accepted++
    sessions.add(session)
    session.on('close', () => sessions.delete(session))
  })
  server.on('stream', (stream, headers) => {
    // A reset makes node:http2 emit an error on the server's stream too.
    stream.on('error', () => {})
    const chunks: Buffer[] = []
    stream.on('data', (chunk: Buffer) => chunks.push(chunk))
    stream.on('end', () => script(stream, headers, Buffer.concat(chunks)))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    sessions,
    /** Connections accepted so far. */
    get connections() {
      return accepted
    },
    async close() {
      for (const session of sessions) session.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** Answers with the request's messages joined, as EchoService's methods do. */
function echoAnswer(stream: http2.ServerHttp2Stream, body: Buffer, trailers: Record<string, string> = {}): void {
  stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true })
  stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', ...trailers }))
  stream.end(answer(requestMessages(body).join(',')))
}

describe('drainpipe/grpc against a grpc-js server (TLS): flow control and timeouts', () => {
  let server: GrpcTestServer
  let client: Client
  let echo: Echo

  beforeAll(async () => {
    server = await startGrpcServer({ tls: true })
    client = new Client({ connect: { ca: pki.ca } })
    echo = createClient(EchoService, createGrpcTransport({ baseUrl: server.baseUrl, client }))
  })

  afterAll(async () => {
    await client.close()
    await server.close()
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

  it("the client's headersTimeout and bodyTimeout do not cut gRPC calls short (deadlines are gRPC's)", async () => {
    const impatient = new Client({ connect: { ca: pki.ca }, headersTimeout: 50, bodyTimeout: 50 })
    try {
      const slow = createClient(EchoService, createGrpcTransport({ baseUrl: server.baseUrl, client: impatient }))
      expect((await slow.echo({ message: 'patience', delayMs: 300 })).message).toBe('patience')
    } finally {
      await impatient.close()
    }
  })


  it('a passed client stays open after transport.close()', async () => {
    const transport = createGrpcTransport({ baseUrl: server.baseUrl, client })
    await transport.close()
    expect((await createClient(EchoService, transport).echo({ message: 'still open' })).message).toBe('still open')
  })

  it('a deadline that passes while the call waits for a stream slot fails it unsent', async () => {
    const narrow = await startGrpcServer({ tls: true, channelOptions: { 'grpc.max_concurrent_streams': 1 } })
    const transport = createGrpcTransport({ baseUrl: narrow.baseUrl, clientOptions: { connect: { ca: pki.ca } } })
    try {
      const narrowEcho = createClient(EchoService, transport)
      const started = once(narrow.events, 'call')
      const first = narrowEcho.echo({ message: 'holds the only slot', delayMs: 1_000 })
      await started
      const error = await caught(narrowEcho.echo({ message: 'queued' }, { timeoutMs: 100 }))
      expect(error.code).toBe(Code.DeadlineExceeded)
      expect((await first).message).toBe('holds the only slot')
      expect(narrow.calls.get('echo')).toBe(1)
    } finally {
      await transport.close()
      await narrow.close()
    }
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

type Script = (stream: http2.ServerHttp2Stream) => void

const grpcHeaders = { ':status': 200, 'content-type': 'application/grpc' }
/** Headers, DATA, then trailers (or none: the stream just ends). */
const reply =
  (data: Buffer[], trailers: Record<string, string> | undefined, headers: http2.OutgoingHttpHeaders = grpcHeaders): Script =>
  (stream) => {
    stream.respond(headers, { waitForTrailers: trailers !== undefined })
    if (trailers !== undefined) stream.on('wantTrailers', () => stream.sendTrailers(trailers))
    for (const chunk of data) stream.write(chunk)
    stream.end()
  }
const trailersOnly =
  (fields: Record<string, string>, status = 200): Script =>
  (stream) =>
    stream.respond({ ':status': status, 'content-type': 'application/grpc', ...fields }, { endStream: true })
/**
 * Headers, a message, then RST_STREAM(CANCEL) once the write is done. Other
 * codes after a response head come from a raw-frame server (below): node:http2's
 * server turns some close() calls into a plain END_STREAM depending on where its
 * write stands, and Node 22 drops a head still queued when the stream is reset.
 */
const cancelAfterHeaders: Script = (stream) => {
  stream.respond(grpcHeaders)
  stream.write(answer('partial'), () => stream.close(NGHTTP2_CANCEL))
}
const ok = { 'grpc-status': '0' }

describe('transparent retries of calls the server never processed', () => {
  let server: Awaited<ReturnType<typeof scriptedServer>>
  let transport: GrpcTransport
  let echo: Echo
  let attempts: string[][]
  let refuse: number
  let goawayBelow: boolean

  beforeAll(async () => {
    server = await scriptedServer((stream, _headers, body) => {
      attempts.push(requestMessages(body))
      // A GOAWAY whose last-stream-id is below this stream: the server says it never processed it.
      if (goawayBelow) {
        goawayBelow = false
        stream.session!.goaway(http2.constants.NGHTTP2_NO_ERROR, stream.id! - 2)
        return
      }
      // The whole request was read, then refused: the server provably did not process it.
      if (refuse > 0) {
        refuse--
        stream.close(NGHTTP2_REFUSED_STREAM)
        return
      }
      echoAnswer(stream, body, { 'x-attempt': String(attempts.length) })
    })
    // A transport-owned client: gRPC's 256 KiB retry buffer.
    transport = createGrpcTransport({ baseUrl: server.baseUrl })
    echo = createClient(EchoService, transport)
  })

  afterAll(async () => {
    await transport.close()
    await server.close()
  })

  const reset = (refusals: number) => {
    attempts = []
    refuse = refusals
    goawayBelow = false
  }

  it('unary: refused once, sent again and answered; the retry is published and counted', async () => {
    reset(1)
    const retries: unknown[] = []
    const onRetry = (message: unknown) => retries.push(message)
    subscribe('drainpipe:request:retry', onRetry)
    try {
      const before = transport.client.stats().retries
      let trailer: Headers | undefined
      const response = await echo.echo({ message: 'again' }, { onTrailer: (value) => (trailer = value) })
      expect(response.message).toBe('again')
      expect(trailer?.get('x-attempt')).toBe('2')
      expect(attempts).toEqual([['again'], ['again']])
      expect(retries).toEqual([expect.objectContaining({ path: '/drainpipe.test.echo.v1.EchoService/Echo', attempt: 2, reason: 'DRAINPIPE_REFUSED_STREAM' })])
      expect(transport.client.stats().retries - before).toBe(1)
    } finally {
      unsubscribe('drainpipe:request:retry', onRetry)
    }
  })

  it("a call above a GOAWAY's last-stream-id is sent again on a new connection", async () => {
    reset(0)
    await echo.echo({ message: 'first' })
    const connections = server.connections
    attempts = []
    goawayBelow = true
    expect((await echo.echo({ message: 'above' })).message).toBe('above')
    expect(attempts).toEqual([['above'], ['above']])
    expect(server.connections).toBe(connections + 1)
  })

  it('server streaming: the request is one fixed body, replayed whatever its size', async () => {
    reset(1)
    const big = 'b'.repeat(300 * 1024)
    const received: string[] = []
    for await (const response of echo.serverStream({ message: big })) received.push(response.message)
    expect(received).toEqual([big])
    expect(attempts).toEqual([[big], [big]])
  })

  it('client streaming and bidi: request messages up to 256 KiB are replayed', async () => {
    const chunk = 'c'.repeat(1024)
    const many = Array.from({ length: 200 }, (_, index) => ({ message: `${index}:${chunk}` }))
    reset(1)
    const response = await echo.clientStream(messages(...many))
    expect(response.message.split(',')).toHaveLength(200)
    expect(attempts.map((attempt) => attempt.length)).toEqual([200, 200])
    reset(1)
    const answers: string[] = []
    for await (const message of echo.bidi(messages(...many.slice(0, 10)))) answers.push(message.message)
    expect(answers[0]!.split(',')).toHaveLength(10)
    expect(attempts.map((attempt) => attempt.length)).toEqual([10, 10])
  })

  it('client streaming beyond 256 KiB is not replayed: Unavailable, the refusal as its cause', async () => {
    reset(1)
    const chunk = 'd'.repeat(1024)
    const error = await caught(echo.clientStream(messages(...Array.from({ length: 400 }, (_, index) => ({ message: `${index}:${chunk}` })))))
    expect(error.code).toBe(Code.Unavailable)
    expect(error.cause).toBeInstanceOf(RefusedStreamError)
    expect(attempts.map((attempt) => attempt.length)).toEqual([400])
  })

  it("gives up after the client's retries", async () => {
    reset(10)
    const error = await caught(echo.echo({ message: 'never' }))
    expect(error.code).toBe(Code.Unavailable)
    expect(attempts).toHaveLength(4)
  })

})


describe('a reset after the response head, from a raw-frame server', () => {
  // The server answers every stream with a response head and one message, then resets it with `code`.
  let code: number
  let server: HostileServer
  let client: Client
  let echo: Echo

  beforeAll(async () => {
    server = await startHostileServer({
      host: '127.0.0.61',
      script: async (connection) => {
        for (;;) {
          const id = await connection.nextStream()
          await connection.frame((frame) => frame.streamId === id && (frame.flags & Flag.END_STREAM) !== 0)
          connection.write(frames.headers(id, [[':status', '200'], ['content-type', 'application/grpc']]))
          connection.write(frames.data(id, answer('partial')))
          connection.write(frames.rstStream(id, code))
        }
      },
    })
    client = new Client({ connect: { ca: pki.ca }, lookup: tableLookup({ 'api.test': ['127.0.0.61'] }).lookup })
    echo = createClient(EchoService, createGrpcTransport({ baseUrl: `https://api.test:${server.port}`, client }))
  })

  afterAll(async () => {
    await client.close()
    await server.close()
  })

  it('REFUSED_STREAM: the call is not retried, whatever the server claims once its response started', async () => {
    code = ErrorCode.REFUSED_STREAM
    const streams = () => server.connections.reduce((sum, connection) => sum + connection.streams.length, 0)
    const before = streams()
    const error = await caught(echo.echo({ message: 'once' }))
    expect(error.code).toBe(Code.Unavailable)
    expect(error.cause).toBeInstanceOf(ProtocolError)
    expect(streams() - before).toBe(1)
  })

  it('ENHANCE_YOUR_CALM: ResourceExhausted', async () => {
    code = ErrorCode.ENHANCE_YOUR_CALM
    const error = await caught(echo.echo({ message: 'hi' }))
    expect(error.code).toBe(Code.ResourceExhausted)
    expect(error.message).toMatch(/reset.* with ENHANCE_YOUR_CALM/)
  })
})

describe("protocol errors from a server, as gRPC's status codes", () => {
  const scripts = new Map<string, Script>()
  let server: Awaited<ReturnType<typeof scriptedServer>>
  let echo: Echo
  let transport: GrpcTransport

  beforeAll(async () => {
    server = await scriptedServer((stream, headers) => scripts.get(String(headers['x-script']))!(stream))
    transport = createGrpcTransport({ baseUrl: server.baseUrl })
    echo = createClient(EchoService, transport)
  })

  afterAll(async () => {
    await transport.close()
    await server.close()
  })

  const detailsOf = (code: number, message: string) => {
    // google.rpc.Status { code, message } without details.
    const text = Buffer.from(message)
    return Buffer.concat([Buffer.from([0x08, code, 0x12, text.length]), text]).toString('base64').replace(/=+$/, '')
  }

  it.each<[string, Script, Code, string | RegExp]>([
    ['HTTP 503 from a proxy', reply([Buffer.from('overloaded')], undefined, { ':status': 503, 'content-type': 'text/plain' }), Code.Unavailable, 'HTTP 503'],
    ['HTTP 404', reply([], undefined, { ':status': 404 }), Code.Unimplemented, 'HTTP 404'],
    ['HTTP 500 that says why in grpc-status', trailersOnly({ 'grpc-status': '8', 'grpc-message': 'quota' }, 500), Code.ResourceExhausted, 'quota'],
    ['a content-type that is not gRPC', reply([Buffer.from('<html>')], undefined, { ':status': 200, 'content-type': 'text/html' }), Code.Unknown, 'content-type'],
    ['trailers-only, percent-encoded UTF-8 message', trailersOnly({ 'grpc-status': '14', 'grpc-message': 'try%20again%20%E2%9C%93' }), Code.Unavailable, 'try again ✓'],
    ['a grpc-message that is not valid percent-encoding, shown as sent', trailersOnly({ 'grpc-status': '10', 'grpc-message': '100%zz' }), Code.Aborted, '100%zz'],
    ['a grpc-status that is not a number', trailersOnly({ 'grpc-status': 'ok' }), Code.Internal, 'invalid grpc-status'],
    ['a grpc-status out of range', trailersOnly({ 'grpc-status': '99' }), Code.Internal, 'invalid grpc-status'],
    ['a response without grpc-status', reply([answer('no status')], {}), Code.Internal, 'without grpc-status'],
    ['grpc-status-details-bin without grpc-status', trailersOnly({ 'grpc-status-details-bin': detailsOf(5, 'from details') }), Code.NotFound, 'from details'],
    ['a compressed message without grpc-encoding', reply([framed(Buffer.from('x'), 1)], ok), Code.Internal, 'without grpc-encoding'],
    ['a response encoding the client does not accept', reply([answer('brotli?')], ok, { ...grpcHeaders, 'grpc-encoding': 'br' }), Code.Internal, 'unsupported response encoding'],
    ['a message cut off by the end of the response', reply([answer('cut off').subarray(0, 8)], ok), Code.Internal, 'inside a message'],
    ['unknown message flags', reply([framed(Buffer.from('x'), 0x80)], ok), Code.Internal, 'invalid message flags'],
    ['two messages for a unary method', reply([answer('one'), answer('two')], ok), Code.Unimplemented, 'more than one response message'],
    ['no message for a unary method', reply([], ok), Code.Unimplemented, 'no response message'],
    ['the server cancels: RST_STREAM CANCEL', cancelAfterHeaders, Code.Canceled, /reset.* with CANCEL/],
  ])('%s', async (name, script, code, text) => {
    scripts.set(name, script)
    const error = await caught(echo.echo({ message: 'hi' }, { headers: { 'x-script': name } }))
    expect(error.code).toBe(code)
    expect(error.message).toMatch(text)
  })

  it('unparsable grpc-status-details-bin: the status stands, without details', async () => {
    scripts.set('garbage details', trailersOnly({ 'grpc-status': '5', 'grpc-message': 'gone', 'grpc-status-details-bin': '////' }))
    const error = await caught(echo.echo({ message: 'hi' }, { headers: { 'x-script': 'garbage details' } }))
    expect(error.code).toBe(Code.NotFound)
    expect(error.rawMessage).toBe('gone')
    expect(error.details).toEqual([])
  })

  it('a message split over many DATA frames, and many messages in one, arrive whole and in order', async () => {
    const stream = Buffer.concat(Array.from({ length: 50 }, (_, index) => answer(`m${index}`)))
    const chunks = Array.from({ length: Math.ceil(stream.length / 3) }, (_, index) => stream.subarray(index * 3, index * 3 + 3))
    scripts.set('dribble', reply([...chunks, answer('m50'), answer('m51')], ok))
    const received: string[] = []
    for await (const message of echo.serverStream({ message: 'hi' }, { headers: { 'x-script': 'dribble' } })) received.push(message.message)
    expect(received).toEqual(Array.from({ length: 52 }, (_, index) => `m${index}`))
  })

  it('a compressed response message is read with the grpc-encoding the server named', async () => {
    const compressed = Buffer.from(await compressionGzip.compress(toBinary(EchoResponseSchema, create(EchoResponseSchema, { message: 'squeezed' }))))
    scripts.set('gzip', reply([framed(compressed, 1)], ok, { ...grpcHeaders, 'grpc-encoding': 'gzip' }))
    expect((await echo.echo({ message: 'hi' }, { headers: { 'x-script': 'gzip' } })).message).toBe('squeezed')
    const bomb = Buffer.from(await compressionGzip.compress(new Uint8Array(1024 * 1024)))
    scripts.set('bomb', reply([framed(bomb, 1)], ok, { ...grpcHeaders, 'grpc-encoding': 'gzip' }))
    const limited = createGrpcTransport({ baseUrl: server.baseUrl, readMaxBytes: 64 * 1024 })
    try {
      const error = await caught(createClient(EchoService, limited).echo({ message: 'hi' }, { headers: { 'x-script': 'bomb' } }))
      expect(error.code).toBe(Code.ResourceExhausted)
    } finally {
      await limited.close()
    }
  })
})

describe('interceptors: what they see of a call, and what they may change', () => {
  let server: Awaited<ReturnType<typeof scriptedServer>>

  beforeAll(async () => {
    // A request with 'x-hold' is never answered (the client ends it); the rest are echoed.
    server = await scriptedServer((stream, headers, body) => {
      if (headers['x-hold'] === undefined) echoAnswer(stream, body)
    })
  })

  afterAll(async () => {
    await server.close()
  })

  const through = (interceptor: Interceptor) => createClient(EchoService, createGrpcTransport({ baseUrl: server.baseUrl, interceptors: [interceptor] }))

  it("req.signal aborts when the call ends, when the deadline passes, or when the caller aborts, as with Connect's transports", async () => {
    const signals: AbortSignal[] = []
    const echo = through((next) => (request) => {
      signals.push(request.signal)
      return next(request)
    })
    await echo.echo({ message: 'done' })
    expect(signals[0]!.aborted).toBe(true)
    const deadline = await caught(echo.echo({ message: 'late' }, { headers: { 'x-hold': '1' }, timeoutMs: 50 }))
    expect(deadline.code).toBe(Code.DeadlineExceeded)
    expect((signals[1]!.reason as ConnectError).code).toBe(Code.DeadlineExceeded)
    const controller = new AbortController()
    const cancelled = echo.echo({ message: 'never' }, { headers: { 'x-hold': '1' }, signal: controller.signal })
    controller.abort(new Error('changed my mind'))
    expect((await caught(cancelled)).code).toBe(Code.Canceled)
    expect((signals[2]!.reason as ConnectError).code).toBe(Code.Canceled)
  })

  it('a signal an interceptor puts in the request cancels the call; a spread request keeps everything', async () => {
    const mine = new AbortController()
    const echo = through((next) => (request) => next({ ...request, signal: mine.signal, header: new Headers({ ...Object.fromEntries(request.header), 'x-hold': '1' }) }))
    const call = echo.echo({ message: 'held' })
    mine.abort()
    expect((await caught(call)).code).toBe(Code.Canceled)
    const spread = through((next) => (request) => next({ ...request }))
    expect((await spread.echo({ message: 'copied' }, { timeoutMs: 5_000 })).message).toBe('copied')
  })

  it('stream requests carry full messages; an interceptor error fails the call as a ConnectError', async () => {
    const seen: unknown[] = []
    const echo = through((next) => async (request) => {
      if (request.stream) {
        const input = request.message
        return next({
          ...request,
          message: (async function* () {
            for await (const message of input) {
              seen.push(message)
              yield message
            }
          })(),
        })
      }
      throw new Error('not today')
    })
    const response = await echo.clientStream(messages({ message: 'partial init' }))
    expect(response.message).toBe('partial init')
    expect(seen).toEqual([create(EchoRequestSchema, { message: 'partial init' })])
    const error = await caught(echo.echo({ message: 'refused' }))
    expect(error.code).toBe(Code.Unknown)
    expect(error.rawMessage).toBe('not today')
  })
})

describe('framing', () => {
  it('messages split at every byte boundary, or packed together, come out whole', () => {
    const messages = [Buffer.from('first'), Buffer.alloc(0), Buffer.from('third message')]
    const wire = Buffer.concat(messages.map((message, index) => framed(message, index === 2 ? 1 : 0)))
    for (let split = 0; split <= wire.length; split++) {
      const received: [string, boolean][] = []
      const decoder = new MessageDecoder(1024, { received: (message, compressed) => received.push([message.toString(), compressed]) })
      decoder.push(wire.subarray(0, split))
      decoder.push(wire.subarray(split))
      expect(received).toEqual([
        ['first', false],
        ['', false],
        ['third message', true],
      ])
      expect(decoder.partial).toBe(false)
    }
  })

  it('a message over the limit fails at its prefix, before its bytes are buffered', () => {
    const decoder = new MessageDecoder(16, { received: () => {} })
    const prefix = Buffer.from([0, 0, 0, 0, 17])
    let error: unknown
    try {
      decoder.push(prefix.subarray(0, 2))
      decoder.push(prefix.subarray(2))
    } catch (thrown) {
      error = thrown
    }
    expect(error).toBeInstanceOf(ConnectError)
    expect((error as ConnectError).code).toBe(Code.ResourceExhausted)
  })

  it('grpc-timeout: the finest unit that fits in 8 digits, rounded up', () => {
    expect(grpcTimeout(200)).toBe('200m')
    expect(grpcTimeout(1.2)).toBe('2m')
    expect(grpcTimeout(99_999_999)).toBe('99999999m')
    expect(grpcTimeout(100_000_000)).toBe('100000S')
    expect(grpcTimeout(99_999_999_001)).toBe('1666667M')
    expect(grpcTimeout(Number.MAX_SAFE_INTEGER)).toBe('99999999H')
  })
})

describe('options and metadata', () => {
  let server: Awaited<ReturnType<typeof scriptedServer>>
  let seen: http2.IncomingHttpHeaders[]

  beforeAll(async () => {
    server = await scriptedServer((stream, headers, body) => {
      seen.push(headers)
      echoAnswer(stream, body)
    })
  })

  afterAll(async () => {
    await server.close()
  })

  it('rejects options that cannot work with an InvalidOptionError naming them', () => {
    expect(() => createGrpcTransport({ baseUrl: 'ftp://example.test' })).toThrow(InvalidOptionError)
    expect(() => createGrpcTransport({ baseUrl: 'not a url' })).toThrow(/baseUrl/)
    const client = new Client()
    expect(() => createGrpcTransport({ baseUrl: server.baseUrl, client, clientOptions: {} })).toThrow(/clientOptions/)
    expect(() => createGrpcTransport({ baseUrl: server.baseUrl, client, readMaxBytes: 0 })).toThrow(/readMaxBytes/)
    expect(() => createGrpcTransport({ baseUrl: server.baseUrl, client, compressMinBytes: -1 })).toThrow(/compressMinBytes/)
    // An option of the owned client is checked by the client itself.
    expect(() => createGrpcTransport({ baseUrl: server.baseUrl, clientOptions: { retries: -1 } })).toThrow(InvalidOptionError)
    void client.close()
  })

  it('a baseUrl with a path sends calls under it; metadata of every HeadersInit shape; protocol fields win', async () => {
    const transport = createGrpcTransport({ baseUrl: `${server.baseUrl}/prefix/`, defaultTimeoutMs: 30_000 })
    try {
      const echo = createClient(EchoService, transport)
      seen = []
      await echo.echo({ message: 'a' }, { headers: new Headers({ 'x-one': '1', 'User-Agent': 'mine/1.0' }) })
      await echo.echo({ message: 'b' }, { headers: [['X-Two', '2'], ['x-two', '3']], timeoutMs: 1_500 })
      await echo.echo({ message: 'c' }, { headers: { 'X-Three': '3', 'content-type': 'text/plain', te: 'gzip' }, timeoutMs: 0 })
      expect(seen.map((headers) => headers[':path'])).toEqual(Array(3).fill('/prefix/drainpipe.test.echo.v1.EchoService/Echo'))
      expect(seen.map((headers) => [headers['user-agent'], headers['grpc-timeout']])).toEqual([
        ['mine/1.0', '30000m'],
        ['grpc-node-drainpipe', '1500m'],
        // Connect's rule: timeoutMs 0 (or less) means no deadline.
        ['grpc-node-drainpipe', undefined],
      ])
      expect(seen[0]!['x-one']).toBe('1')
      expect(seen[1]!['x-two']).toBe('2, 3')
      expect(seen[2]).toMatchObject({ 'x-three': '3', 'content-type': 'application/grpc', te: 'trailers', 'grpc-accept-encoding': 'gzip' })
    } finally {
      await transport.close()
    }
  })
})

/**
 * grpc-go's server keepalive enforcement, as its defaults have it (MinTime 5
 * minutes, PermitWithoutStream false, 2 strikes): a PING less than MinTime
 * after the previous one (2 hours without calls) is a strike unless the
 * server sent headers or data since; the third strike is answered with
 * GOAWAY ENHANCE_YOUR_CALM "too_many_pings". grpc-go then also closes the
 * connection; this emulation lets the open call finish so the test can see
 * what the client does next. Time is the test's manual clock.
 */
function grpcGoPingPolicy(session: http2.ServerHttp2Session, clock: ManualClock, sentSinceLastPing: () => boolean, hasStreams: () => boolean) {
  const policy = { pings: 0, strikes: 0, goaways: 0 }
  let lastPing: number | undefined
  session.on('ping', () => {
    policy.pings++
    const now = clock.now()
    const minTime = hasStreams() ? 5 * 60_000 : 2 * 3_600_000
    if (sentSinceLastPing()) policy.strikes = 0
    else if (lastPing !== undefined && now - lastPing < minTime) policy.strikes++
    lastPing = now
    if (policy.strikes > 2) {
      policy.goaways++
      session.goaway(NGHTTP2_ENHANCE_YOUR_CALM, 2 ** 31 - 1, Buffer.from('too_many_pings'))
    }
  })
  return policy
}

describe('keepalive as gRPC servers enforce it', () => {
  it("the transport-owned client's PINGs are 5 minutes apart and only while calls are open", async () => {
    const server = await scriptedServer((stream, _headers, body) => echoAnswer(stream, body))
    const transport = createGrpcTransport({ baseUrl: server.baseUrl })
    try {
      await createClient(EchoService, transport).echo({ message: 'hi' })
      expect(transport.client.stats().origins[server.baseUrl]!.pingInterval).toBe(grpcKeepAlive.interval)
      expect(grpcKeepAlive).toEqual({ interval: 300_000, timeout: 20_000, whenIdle: false })
    } finally {
      await transport.close()
      await server.close()
    }
  })

  /** A quiet server stream held open while the clock runs; returns what grpc-go's policy counted. */
  async function quietStream(keepAlive: { interval: number; timeout: number } | undefined, duration: number) {
    const clock = new ManualClock()
    const held = new Set<http2.ServerHttp2Stream>()
    let sent = false
    let policy: ReturnType<typeof grpcGoPingPolicy> | undefined
    let session: http2.ServerHttp2Session | undefined
    const server = await scriptedServer((stream) => {
      held.add(stream)
      stream.respond(grpcHeaders, { waitForTrailers: true })
      stream.on('wantTrailers', () => stream.sendTrailers(ok))
      stream.write(answer('first'))
      sent = true
    })
    const transport = createGrpcTransport({ baseUrl: server.baseUrl, clientOptions: { clock, ...(keepAlive ? { keepAlive } : {}) } })
    try {
      const echo = createClient(EchoService, transport)
      const iterator = echo.serverStream({ message: 'hold' })[Symbol.asyncIterator]()
      expect((await iterator.next()).value?.message).toBe('first')
      session = [...server.sessions][0]!
      policy = grpcGoPingPolicy(
        session,
        clock,
        () => {
          const was = sent
          sent = false
          return was
        },
        () => held.size > 0,
      )
      const interval = transport.client.stats().origins[server.baseUrl]!.pingInterval
      for (let elapsed = 0; elapsed < duration; elapsed += interval) {
        const pinged = once(session, 'ping')
        clock.advance(interval)
        await pinged
        // The client handled its PING's ACK before it answers a PING sent after that ACK.
        await new Promise<void>((resolve) => session!.ping(() => resolve()))
      }
      const pingInterval = transport.client.stats().origins[server.baseUrl]!.pingInterval
      // The server finishes the stream, if the call is still open.
      for (const stream of held) if (!stream.closed) stream.end()
      const outcome = await iterator.next().then(
        (result) => (result.done ? 'ok' : 'more'),
        (error: unknown) => Code[(error as ConnectError).code],
      )
      return { ...policy, pingInterval, outcome }
    } finally {
      await transport.close()
      await server.close()
    }
  }

  it('grpc-go never punishes the defaults: an hour of a quiet open call, a PING every 5 minutes, no strike', async () => {
    const { pings, strikes, goaways, pingInterval, outcome } = await quietStream(undefined, 3_600_000)
    expect(outcome).toBe('ok')
    expect(pings).toBe(12)
    expect(strikes).toBe(0)
    expect(goaways).toBe(0)
    expect(pingInterval).toBe(300_000)
  })

  it("drainpipe's general default (30 s) draws grpc-go's too_many_pings; the client doubles its interval", async () => {
    const { strikes, goaways, pingInterval, outcome } = await quietStream({ interval: 30_000, timeout: 10_000 }, 120_000)
    // The GOAWAY's last-stream-id covers the open call. node:http2 ends every stream on a GOAWAY with an
    // error code; drainpipe's engine lets the call finish, as RFC 9113 §6.8 allows (a real grpc-go then
    // also closes the connection, which ends the call either way).
    expect(outcome).toBe(process.env.DRAINPIPE_ENGINE === 'node' ? 'Unavailable' : 'ok')
    expect(strikes).toBe(3)
    expect(goaways).toBe(1)
    expect(pingInterval).toBe(60_000)
  })
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

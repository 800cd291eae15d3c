/**
 * The wire engine against real node:http2 servers on loopback: requests
 * both ways with flow control, trailers and informational responses,
 * SETTINGS and PING, GOAWAY with and without an error code, resets from
 * either side, graceful close and destroy, and nothing left open after.
 */
import { createHash } from 'node:crypto'
import http2 from 'node:http2'
import { once } from 'node:events'
import { afterEach, describe, expect, it } from 'vitest'
import { Http2ErrorCode } from '../../lib/engine.js'
import { ConnectError, ConnectionLostError, InvalidHeaderError, ProtocolNegotiationError, ReadOnlyError } from '../../lib/errors.js'
import { responseHeaders } from '../../lib/node-engine.js'
import { pattern, startBackend, type Backend, type BackendOptions } from '../helpers/h2-server.js'
import { pki } from '../helpers/pki.js'
import { until } from '../helpers/processes.js'
import { startHostileServer } from '../hostile/server.js'
import { connect, openSockets, pump, request, type ConnectOptions } from './harness.js'

const HOST = '127.0.0.1'
const MiB = 1 << 20

const cleanup: (() => unknown)[] = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

async function setup(backendOptions: BackendOptions = {}, options: ConnectOptions = {}) {
  const backend = await startBackend({ host: HOST, ...backendOptions })
  cleanup.push(() => backend.close())
  const { connection, log } = await connect(HOST, backend.port, options)
  cleanup.push(() => connection.destroy())
  return { backend, connection, log }
}

/** The one server session of a backend (the engine opens one connection). */
function session(backend: Backend): http2.ServerHttp2Session {
  const [only] = backend.sessions
  if (only === undefined) throw new Error('no server session')
  return only
}

describe('requests against node:http2', () => {
  it('GET: status, headers without pseudo-headers, body, end with no trailers', async () => {
    const { connection } = await setup()
    const get = request(connection, '/hello')
    await get.settled
    expect(get.calls).toEqual(['response', 'data', 'end'])
    expect(get.status).toBe(200)
    expect(get.headers!['x-backend']).toBe(HOST)
    expect(Object.keys(get.headers!).some((name) => name.startsWith(':'))).toBe(false)
    expect(get.body().toString()).toBe('hello')
    expect(get.trailers).toEqual({})
    expect(connection.activeStreams).toBe(0)
  })

  it('POST: the body arrives and comes back', async () => {
    const { connection } = await setup()
    const post = request(connection, '/echo', { body: 'ping', headers: { 'content-type': 'text/plain' } })
    await post.settled
    expect(post.status).toBe(200)
    expect(post.headers!['content-type']).toBe('text/plain')
    expect(post.body().toString()).toBe('ping')
  })

  it('request fields reach the server as given: arrays repeated, te: trailers', async () => {
    const { connection } = await setup()
    const get = request(connection, '/headers', { headers: { 'x-one': 'a', 'x-list': ['b', 'c'], te: 'trailers', 'user-agent': 'wire-test' } })
    await get.settled
    const seen = JSON.parse(get.body().toString()) as Record<string, string>
    expect(seen[':method']).toBe('GET')
    expect(seen[':authority']).toBe('api.test')
    expect(seen[':scheme']).toBe('https')
    expect(seen['x-one']).toBe('a')
    expect(seen['x-list']).toBe('b, c')
    expect(seen.te).toBe('trailers')
    expect(seen['user-agent']).toBe('wire-test')
  })

  it('a HEAD response with a content-length and no DATA ends cleanly', async () => {
    const { connection } = await setup()
    const head = request(connection, '/bytes?size=100', { method: 'HEAD' })
    await head.settled
    expect(head.status).toBe(200)
    expect(head.headers!['content-length']).toBe('100')
    expect(head.received).toBe(0)
    expect(head.calls).toEqual(['response', 'end'])
  })

  it('100 concurrent requests on one connection all complete', async () => {
    const { backend, connection } = await setup()
    const requests = Array.from({ length: 100 }, (_, i) => request(connection, `/echo?i=${i}`, { body: `body ${i}` }))
    expect(connection.activeStreams).toBe(100)
    await Promise.all(requests.map((r) => r.settled))
    requests.forEach((r, i) => expect(r.body().toString()).toBe(`body ${i}`))
    expect(connection.activeStreams).toBe(0)
    expect(backend.connections).toBe(1)
  })

  it('stream ids are odd and increasing', async () => {
    const { connection } = await setup()
    const ids = Array.from({ length: 5 }, () => request(connection, '/hello')).map((r) => r.stream.id)
    expect(ids).toEqual([1, 3, 5, 7, 9])
  })

  it('h2c (prior knowledge) over plain TCP', async () => {
    const { connection } = await setup({ tls: false }, { scheme: 'http' })
    const get = request(connection, '/hello', { scheme: 'http' })
    await get.settled
    expect(get.body().toString()).toBe('hello')
  })

  it('response fields are shaped as node:http2 shapes them (set-cookie arrays, joined repeats, first of single-value fields)', async () => {
    const handler: BackendOptions['handler'] = (req, res) => {
      if (req.url !== '/shapes') return false
      res.stream.respond({
        ':status': 200,
        'set-cookie': ['a=1', 'b=2'],
        'x-repeated': ['one', 'two'],
        cookie: ['c=3', 'd=4'],
        'content-type': 'text/plain',
        'x-single': 'alone',
      })
      res.stream.end('shapes')
      return true
    }
    const { backend, connection } = await setup({ handler })
    const get = request(connection, '/shapes')
    await get.settled
    const viaNode = await new Promise<Record<string, string | string[]>>((resolve, reject) => {
      const client = http2.connect(`https://${HOST}:${backend.port}`, { ca: pki.ca, servername: 'api.test' })
      const req = client.request({ ':path': '/shapes' })
      req.on('response', (headers) => {
        client.close()
        resolve(responseHeaders(headers))
      })
      req.on('error', reject)
      req.resume()
    })
    for (const name of ['date', 'x-connection']) {
      delete viaNode[name]
      delete get.headers![name]
    }
    expect(get.headers).toEqual(viaNode)
    expect(get.headers!['set-cookie']).toEqual(['a=1', 'b=2'])
    expect(get.headers!['x-repeated']).toBe('one, two')
    expect(get.headers!.cookie).toBe('c=3; d=4')
  })
})

describe('bodies with flow control (RFC 9113 §6.9)', () => {
  it('a 10 MiB download arrives byte-exact, with WINDOW_UPDATEs batched, not one per frame', async () => {
    const { connection } = await setup()
    const get = request(connection, `/bytes?size=${10 * MiB}`)
    await get.settled
    expect(get.received).toBe(10 * MiB)
    expect(get.body().equals(pattern(10 * MiB))).toBe(true)
    // 640 DATA frames of 16 KiB; credit goes back in half-windows.
    expect(connection.counters.windowUpdatesSent).toBeLessThan(40)
  })

  it('a 10 MiB upload arrives byte-exact, with write() backpressure and writable()', async () => {
    const { connection } = await setup()
    const body = pattern(10 * MiB)
    const post = request(connection, '/hash', { open: true })
    pump(post, body)
    await post.settled
    expect(JSON.parse(post.body().toString())).toEqual({ size: 10 * MiB, sha256: createHash('sha256').update(body).digest('hex') })
    expect(post.writables).toBeGreaterThan(0)
  })

  it('uploads and downloads at once on many streams stay byte-exact', async () => {
    const { connection } = await setup()
    const body = pattern(MiB)
    const posts = Array.from({ length: 8 }, () => {
      const post = request(connection, '/echo', { open: true })
      pump(post, body, 50_000)
      return post
    })
    await Promise.all(posts.map((post) => post.settled))
    for (const post of posts) expect(post.body().equals(body)).toBe(true)
  })

  it('a paused reader holds the server back: no more than the stream window arrives, then resume() delivers the rest', async () => {
    const streamWindow = 256 * 1024
    const { connection } = await setup({}, { settings: { streamWindow } })
    const get = request(connection, `/bytes?size=${10 * MiB}`)
    get.onResponse = () => get.stream.pause()
    await get.whenResponse()
    await until(() => get.stream.heldBytes === streamWindow, 'the stream window to fill')
    // A PING's ACK comes after anything the server had sent before it.
    await new Promise<void>((resolve, reject) => connection.ping((error) => (error ? reject(error) : resolve())))
    expect(get.stream.heldBytes).toBe(streamWindow)
    expect(get.received).toBe(0)
    get.stream.resume()
    await get.settled
    expect(get.body().equals(pattern(10 * MiB))).toBe(true)
  })

  it('pause() inside data() stops delivery at once; resume() continues in order', async () => {
    const { connection } = await setup()
    const get = request(connection, `/bytes?size=${2 * MiB}`)
    let paused = 0
    get.onData = () => {
      if (get.chunks.length % 10 === 0) {
        get.stream.pause()
        paused++
        const before = get.chunks.length
        queueMicrotask(() => {
          expect(get.chunks.length).toBe(before)
          get.stream.resume()
        })
      }
    }
    await get.settled
    expect(paused).toBeGreaterThan(0)
    expect(get.body().equals(pattern(2 * MiB))).toBe(true)
  })

  it("a server starting with a 1000-octet window, then raising it mid-upload (SETTINGS_INITIAL_WINDOW_SIZE), gets the whole body", async () => {
    const { backend, connection, log } = await setup({ settings: { initialWindowSize: 1000 } })
    const body = pattern(MiB)
    const post = request(connection, '/hash', { open: true })
    pump(post, body, 10_000)
    session(backend).settings({ initialWindowSize: MiB })
    await post.settled
    expect(JSON.parse(post.body().toString()).size).toBe(MiB)
    expect(log.settingsChanges).toBeGreaterThanOrEqual(1)
  })
})

describe('trailers and informational responses (RFC 9113 §8.1)', () => {
  it('trailers are delivered with end()', async () => {
    const { connection } = await setup()
    const get = request(connection, '/trailers')
    await get.settled
    expect(get.body().toString()).toBe('with trailers')
    expect(get.trailers).toEqual({ 'grpc-status': '0', 'x-checksum': 'abc' })
  })

  it('103 Early Hints is skipped: only the final response is reported', async () => {
    const handler: BackendOptions['handler'] = (req, res) => {
      if (req.url !== '/hints') return false
      res.stream.additionalHeaders({ ':status': 103, link: '</style.css>; rel=preload' })
      res.end('final')
      return true
    }
    const { connection } = await setup({ handler })
    const get = request(connection, '/hints')
    await get.settled
    expect(get.calls).toEqual(['response', 'data', 'end'])
    expect(get.status).toBe(200)
    expect(get.headers!.link).toBeUndefined()
  })
})

describe('SETTINGS and PING from a node:http2 server', () => {
  it('MAX_CONCURRENT_STREAMS 0 then 100: reported each time, open() refuses while 0', async () => {
    const { backend, connection, log } = await setup()
    expect(connection.maxConcurrentStreams).toBe(Number.POSITIVE_INFINITY)
    session(backend).settings({ maxConcurrentStreams: 0 })
    await log.nextSettings(1)
    expect(connection.maxConcurrentStreams).toBe(0)
    expect(() => request(connection, '/hello')).toThrow(ReadOnlyError)
    session(backend).settings({ maxConcurrentStreams: 100 })
    await log.nextSettings(2)
    expect(connection.maxConcurrentStreams).toBe(100)
    const get = request(connection, '/hello')
    await get.settled
    expect(get.status).toBe(200)
  })

  it('ping() is acknowledged; the server gets its own PING answered', async () => {
    const { backend, connection } = await setup()
    await new Promise<void>((resolve, reject) => connection.ping((error) => (error ? reject(error) : resolve())))
    const payload = Buffer.from('drainpip')
    const echoed = await new Promise<Buffer>((resolve, reject) =>
      session(backend).ping(payload, (error, _duration, ack) => (error ? reject(error) : resolve(ack))),
    )
    expect(echoed).toEqual(payload)
  })

  it('a PING still waiting when the connection goes fails with ConnectionLostError', async () => {
    const { backend, connection } = await setup()
    // Several pings; the server session is destroyed before answering some of them.
    const pings = Array.from({ length: 3 }, () => new Promise<Error | undefined>((resolve) => connection.ping(resolve)))
    session(backend).destroy()
    const results = await Promise.all(pings)
    for (const result of results) if (result !== undefined) expect(result).toBeInstanceOf(ConnectionLostError)
    const late = await new Promise<Error | undefined>((resolve) => connection.ping(resolve))
    expect(late).toBeInstanceOf(ConnectionLostError)
  })
})

describe('GOAWAY from a node:http2 server (RFC 9113 §6.8)', () => {
  it('NO_ERROR with last-stream-id 1: stream 1 completes, 3 and 5 are unprocessed, no new stream', async () => {
    const { backend, connection, log } = await setup()
    const requests = [1, 2, 3].map(() => request(connection, '/delay?ms=200'))
    await until(() => backend.requests === 3, 'the server to see three requests')
    session(backend).goaway(http2.constants.NGHTTP2_NO_ERROR, 1)
    const goaway = await log.nextGoaway()
    expect(goaway).toMatchObject({ errorCode: 0, lastStreamId: 1 })
    expect(connection.accepting).toBe(false)
    expect(() => request(connection, '/hello')).toThrow(ReadOnlyError)
    await Promise.all(requests.map((r) => r.settled))
    expect(requests[0]!.body().toString()).toBe('late')
    for (const above of requests.slice(1)) {
      expect(above.closedWith).toMatchObject({ unprocessed: true })
      expect(above.closedWith!.lost).toBeInstanceOf(ReadOnlyError)
    }
  })

  it('a GOAWAY with an error code leaves the streams at or below last-stream-id running while the socket lives', async () => {
    const { backend, connection, log } = await setup()
    const requests = [1, 2].map(() => request(connection, '/delay?ms=200'))
    await until(() => backend.requests === 2, 'the server to see two requests')
    session(backend).goaway(http2.constants.NGHTTP2_INTERNAL_ERROR, 3, Buffer.from('shutting down'))
    const goaway = await log.nextGoaway()
    expect(goaway.errorCode).toBe(Http2ErrorCode.INTERNAL_ERROR)
    expect(goaway.debug.toString()).toBe('shutting down')
    await Promise.all(requests.map((r) => r.settled))
    for (const r of requests) expect(r.body().toString()).toBe('late')
    expect(log.errors).toEqual([])
  })
})

describe('resets (RFC 9113 §6.4)', () => {
  it('the server resets with INTERNAL_ERROR: closed by the peer with that code', async () => {
    const { connection } = await setup()
    const get = request(connection, '/reset')
    await get.settled
    expect(get.closedWith).toEqual({ code: Http2ErrorCode.INTERNAL_ERROR, by: 'peer', error: undefined, lost: undefined, unprocessed: false })
  })

  it('REFUSED_STREAM before any response is unprocessed', async () => {
    const { connection } = await setup()
    const get = request(connection, '/refuse')
    await get.settled
    expect(get.closedWith).toMatchObject({ code: Http2ErrorCode.REFUSED_STREAM, by: 'peer', unprocessed: true })
  })

  it('our reset mid-download: no handler call follows, the server sees CANCEL, late DATA is ignored quietly', async () => {
    const { connection } = await setup()
    const get = request(connection, `/bytes?size=${10 * MiB}`)
    await get.whenReceived(1)
    get.stream.reset()
    const calls = get.calls.length
    const next = request(connection, '/hello')
    await next.settled
    expect(next.body().toString()).toBe('hello')
    expect(get.calls.length).toBe(calls)
    expect(connection.counters.strayFrames).toBe(0)
    expect(connection.counters.streamErrors).toBe(0)
  })

  it('the server sees our reset code', async () => {
    let resolveCode: (code: number) => void
    const code = new Promise<number>((resolve) => (resolveCode = resolve))
    const handler: BackendOptions['handler'] = (req, res) => {
      if (req.url !== '/hold') return false
      res.writeHead(200)
      res.write('x')
      res.stream.on('close', () => resolveCode(res.stream.rstCode))
      return true
    }
    const { connection } = await setup({ handler })
    const get = request(connection, '/hold')
    await get.whenReceived(1)
    get.stream.reset(Http2ErrorCode.CANCEL)
    expect(await code).toBe(Http2ErrorCode.CANCEL)
  })
})

describe('request heads the engine refuses to send', () => {
  const refused: [string, Record<string, string | string[]>][] = [
    ['connection: close', { connection: 'close' }],
    ['keep-alive', { 'keep-alive': 'timeout=5' }],
    ['proxy-connection', { 'proxy-connection': 'keep-alive' }],
    ['transfer-encoding', { 'transfer-encoding': 'chunked' }],
    ['upgrade', { upgrade: 'websocket' }],
    ['te other than trailers', { te: 'gzip' }],
    ['an uppercase name', { 'X-Upper': 'a' }],
    ['a CR LF in a value', { 'x-inject': 'a\r\nx-evil: 1' }],
    ['a NUL in a value', { 'x-nul': 'a\u0000b' }],
    ['a LF in an array item', { 'x-list': ['ok', 'a\nb'] }],
    ['a pseudo-header among the fields', { ':path': '/other' }],
    ['a space in a name', { 'x bad': 'a' }],
    ['a character beyond ISO-8859-1', { 'x-wide': 'č' }],
    ['host differing from :authority', { host: 'other.test' }],
  ]
  for (const [name, headers] of refused) {
    it(`${name}: InvalidHeaderError, and the connection goes on`, async () => {
      const { connection } = await setup()
      expect(() => request(connection, '/hello', { headers })).toThrow(InvalidHeaderError)
      const next = request(connection, '/hello', { headers: { 'x-after': 'fine' } })
      await next.settled
      expect(next.status).toBe(200)
    })
  }

  it("a head larger than the server's SETTINGS_MAX_HEADER_LIST_SIZE is refused", async () => {
    const { connection } = await setup({ settings: { maxHeaderListSize: 500 } })
    expect(() => request(connection, '/hello', { headers: { 'x-big': 'a'.repeat(600) } })).toThrow(InvalidHeaderError)
    const small = request(connection, '/hello')
    await small.settled
    expect(small.status).toBe(200)
  })
})

describe('stream ids (RFC 9113 §5.1.1)', () => {
  it('at 2^31-1 the connection stops accepting; the last streams still complete', async () => {
    const { connection } = await setup({}, { internals: { firstStreamId: 2 ** 31 - 3 } })
    const first = request(connection, '/hello')
    expect(connection.accepting).toBe(true)
    const last = request(connection, '/hello')
    expect(last.stream.id).toBe(2 ** 31 - 1)
    expect(connection.accepting).toBe(false)
    expect(() => request(connection, '/hello')).toThrow(ReadOnlyError)
    await Promise.all([first.settled, last.settled])
    expect(last.body().toString()).toBe('hello')
  })
})

describe('ending a connection', () => {
  it('close(): no new stream, the open one finishes, then GOAWAY(NO_ERROR) and the socket goes', async () => {
    const { backend, connection, log } = await setup()
    const slow = request(connection, '/delay?ms=100')
    await until(() => backend.requests === 1, 'the server to see the request')
    const serverGoaway = once(session(backend), 'goaway')
    connection.close()
    expect(connection.accepting).toBe(false)
    expect(() => request(connection, '/hello')).toThrow(ReadOnlyError)
    await slow.settled
    expect(slow.body().toString()).toBe('late')
    const [code, lastStreamId] = (await serverGoaway) as [number, number]
    expect({ code, lastStreamId }).toEqual({ code: 0, lastStreamId: 0 })
    await log.whenClosed()
    expect(log.errors).toEqual([])
    expect(log.events).toEqual(['closed'])
  })

  it('destroy(error): open streams are lost with that error, closed() follows, no error() report', async () => {
    const { connection, log } = await setup()
    const slow = request(connection, '/delay?ms=5000')
    const reason = new ConnectionLostError('test destroys')
    connection.destroy(reason)
    await slow.settled
    expect(slow.closedWith).toMatchObject({ lost: reason })
    await log.whenClosed()
    expect(log.errors).toEqual([])
  })

  it('a stream opened in the same turn as destroy() never left: it is unprocessed', async () => {
    const { connection } = await setup()
    const unsent = request(connection, '/hello')
    connection.destroy()
    await unsent.settled
    expect(unsent.closedWith).toMatchObject({ unprocessed: true })
  })

  it('the server dropping the socket mid-request: the stream is lost (ConnectionLostError), error() then closed()', async () => {
    const backend = await startBackend({ host: HOST })
    cleanup.push(() => backend.close())
    const sockets: import('node:tls').TLSSocket[] = []
    backend.server.on('secureConnection', (socket) => sockets.push(socket))
    const { connection, log } = await connect(HOST, backend.port)
    cleanup.push(() => connection.destroy())
    const slow = request(connection, '/delay?ms=5000')
    await until(() => backend.requests === 1, 'the server to see the request')
    sockets[0]!.destroy()
    await slow.settled
    expect(slow.closedWith!.lost).toBeInstanceOf(ConnectionLostError)
    expect(slow.closedWith!.unprocessed).toBe(false)
    await log.whenClosed()
    expect(log.events).toEqual(['error', 'closed'])
  })

  it('the server closing its session mid-request: its GOAWAY is reported, the stream below it is lost, no error()', async () => {
    const { backend, connection, log } = await setup()
    const slow = request(connection, '/delay?ms=5000')
    await until(() => backend.requests === 1, 'the server to see the request')
    session(backend).destroy()
    await slow.settled
    expect(slow.closedWith!.lost).toBeInstanceOf(ConnectionLostError)
    expect(slow.closedWith!.unprocessed).toBe(false)
    await log.whenClosed()
    expect(log.events).toEqual(['goaway 1 0', 'closed'])
  })

  it('close() and destroy() leave no socket open in this process', async () => {
    const backend = await startBackend({ host: HOST })
    const closing = await connect(HOST, backend.port)
    const destroyed = await connect(HOST, backend.port)
    await Promise.all([request(closing.connection, '/hello').settled, request(destroyed.connection, '/hello').settled])
    closing.connection.close()
    destroyed.connection.destroy()
    await Promise.all([closing.log.whenClosed(), destroyed.log.whenClosed()])
    await backend.close()
    await until(() => openSockets().length === 0, 'every socket to close')
    expect(openSockets()).toEqual([])
  })
})

describe('connecting', () => {
  it('an aborted signal rejects with its reason and leaves nothing open', async () => {
    const backend = await startBackend({ host: HOST })
    cleanup.push(() => backend.close())
    const controller = new AbortController()
    const reason = new Error('connect timeout')
    const connecting = connect(HOST, backend.port, { signal: controller.signal })
    controller.abort(reason)
    await expect(connecting).rejects.toBe(reason)
  })

  it('a server that never sends SETTINGS: the signal ends the wait, nothing is left open', async () => {
    const server = await startHostileServer({ host: HOST, settings: false, script: () => {} })
    cleanup.push(() => server.close())
    const controller = new AbortController()
    const connecting = connect(HOST, server.port, { signal: controller.signal })
    await server.connection(1)
    const reason = new Error('connect timeout')
    controller.abort(reason)
    await expect(connecting).rejects.toBe(reason)
    await server.allClosed()
  })

  it('a server choosing HTTP/1.1 through ALPN: ProtocolNegotiationError', async () => {
    const server = await startHostileServer({ host: HOST, alpn: ['http/1.1'], script: () => {} })
    cleanup.push(() => server.close())
    await expect(connect(HOST, server.port)).rejects.toBeInstanceOf(ProtocolNegotiationError)
  })

  it('nothing listening: ConnectError', async () => {
    const backend = await startBackend({ host: HOST })
    const port = backend.port
    await backend.close()
    await expect(connect(HOST, port)).rejects.toBeInstanceOf(ConnectError)
  })

  it('announces our settings: no push, the stream window, the header list limit; and opens the connection window', async () => {
    const { backend } = await setup({}, { settings: { streamWindow: 300_000, connectionWindow: 5_000_000, maxHeaderListSize: 40_000 } })
    const remote = session(backend).remoteSettings
    expect(remote).toMatchObject({ enablePush: false, initialWindowSize: 300_000, maxHeaderListSize: 40_000, headerTableSize: 4096 })
    expect(session(backend).state.remoteWindowSize).toBe(5_000_000)
  })
})

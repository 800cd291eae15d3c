import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { once } from 'node:events'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Agent, fetch as undiciFetch, getGlobalDispatcher, interceptors, request as undiciRequest, setGlobalDispatcher } from 'undici'
import {
  Client,
  InvalidHeaderError,
  ProtocolError,
  QueueFullError,
  RequestAbortedError,
  ConnectError,
} from '../lib/index.js'
import { pattern, startBackend, tableLookup, type Backend } from './helpers/h2-server.js'
import { ManualClock } from './helpers/manual-clock.js'
import { pki } from './helpers/pki.js'

let backend: Backend
let client: Client
let base: string

beforeAll(async () => {
  backend = await startBackend({ host: '127.0.0.2' })
  client = new Client({ connect: { ca: pki.ca }, lookup: tableLookup({ 'api.test': ['127.0.0.2'] }).lookup })
  base = `https://api.test:${backend.port}`
})

afterAll(async () => {
  await client.close()
  await backend.close()
})

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')

describe('through undici and Node APIs', () => {
  it('GET and POST with undici.request', async () => {
    const get = await undiciRequest(`${base}/hello`, { dispatcher: client })
    expect(get.statusCode).toBe(200)
    expect(get.headers['x-backend']).toBe('127.0.0.2')
    expect(await get.body.text()).toBe('hello')
    const post = await undiciRequest(`${base}/echo`, { dispatcher: client, method: 'POST', body: 'payload' })
    expect(await post.body.text()).toBe('payload')
  })

  it('GET and POST with undici.fetch', async () => {
    const get = await undiciFetch(`${base}/hello`, { dispatcher: client })
    expect(get.status).toBe(200)
    expect(await get.text()).toBe('hello')
    const post = await undiciFetch(`${base}/echo`, {
      dispatcher: client,
      method: 'POST',
      body: JSON.stringify({ a: 1 }),
      headers: { 'content-type': 'application/json' },
    })
    expect(await post.json()).toEqual({ a: 1 })
  })

  it("Node's own global fetch after setGlobalDispatcher", async () => {
    const previous = getGlobalDispatcher()
    setGlobalDispatcher(client)
    try {
      const before = client.stats().origins[base]?.requestsByAddress['127.0.0.2'] ?? 0
      const get = await globalThis.fetch(`${base}/hello`)
      expect(await get.text()).toBe('hello')
      const post = await globalThis.fetch(`${base}/echo`, { method: 'POST', body: 'global' })
      expect(await post.text()).toBe('global')
      expect(client.stats().origins[base]!.requestsByAddress['127.0.0.2']).toBe(before + 2)
    } finally {
      setGlobalDispatcher(previous)
    }
  })

  it('composes with undici interceptors (retry, dump)', async () => {
    const composed = client.compose(interceptors.retry({ maxRetries: 1 }), interceptors.dump({ maxSize: 1024 }))
    const res = await undiciRequest(`${base}/bytes?size=100`, { dispatcher: composed })
    expect(res.statusCode).toBe(200)
    expect((await res.body.arrayBuffer()).byteLength).toBe(0) // dump discards the body
  })

  it('composes with dns and decompress interceptors', async () => {
    const { gzipSync } = await import('node:zlib')
    const gzipped = await startBackend({
      host: '127.0.0.1',
      handler: (_req, res) => {
        res.writeHead(200, { 'content-encoding': 'gzip', 'content-type': 'text/plain' })
        res.end(gzipSync('compressed hello'))
      },
    })
    const composed = client.compose(
      interceptors.dns({ lookup: (_origin, _options, callback) => callback(null, [{ address: '127.0.0.1', family: 4, ttl: 60 }]) }),
      interceptors.decompress(),
    )
    try {
      // The dns interceptor rewrites the origin to the address (the certificate names 127.0.0.1)
      // and keeps the name in the host header.
      const res = await undiciRequest(`https://api.test:${gzipped.port}/`, { dispatcher: composed })
      expect(await res.body.text()).toBe('compressed hello')
      expect(gzipped.requests).toBe(1)
    } finally {
      await gzipped.close()
    }
  })

  it("fetch() streams a request body with duplex: 'half'", async () => {
    const body = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('half '))
        controller.enqueue(new TextEncoder().encode('duplex'))
        controller.close()
      },
    })
    const res = await client.fetch(`${base}/echo`, { method: 'POST', body, duplex: 'half' } as never)
    expect(await res.text()).toBe('half duplex')
  })

  it('request(), stream() and asyncRequest() on the client', async () => {
    const res = await client.request(`${base}/headers`, { headers: { 'x-one': '1' } })
    expect((await res.body.json()) as Record<string, string>).toMatchObject({ 'x-one': '1', ':method': 'GET' })
    const streamed = await client.stream(`${base}/trailers`)
    let text = ''
    for await (const chunk of streamed.body) text += chunk
    expect(text).toBe('with trailers')
    expect(await streamed.trailers).toMatchObject({ 'grpc-status': '0' })
    const handle = client.asyncRequest(`${base}/hello`)
    const chunks: Buffer[] = []
    handle.on('data', (chunk) => chunks.push(chunk))
    const [response] = await once(handle, 'response')
    expect(response.statusCode).toBe(200)
    await handle.done
    expect(Buffer.concat(chunks).toString()).toBe('hello')
  })

  it('accepts both handler styles in dispatch()', async () => {
    const legacy = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      let status = 0
      const chunks: Buffer[] = []
      client.dispatch(
        { origin: base, path: '/hello', method: 'GET' },
        {
          onConnect() {},
          onHeaders(statusCode: number, rawHeaders: Buffer[]) {
            status = statusCode
            expect(rawHeaders.every((value) => Buffer.isBuffer(value))).toBe(true)
            return true
          },
          onData(chunk: Buffer) {
            chunks.push(chunk)
            return true
          },
          onComplete() {
            resolve({ status, body: Buffer.concat(chunks).toString() })
          },
          onError: reject,
        } as never,
      )
    })
    expect(legacy).toEqual({ status: 200, body: 'hello' })
    const modern = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      let status = 0
      const chunks: Buffer[] = []
      client.dispatch(
        { origin: new URL(base).origin, path: '/hello', method: 'GET' },
        {
          onRequestStart() {},
          onResponseStart(_controller, statusCode) {
            status = statusCode
          },
          onResponseData(_controller, chunk) {
            chunks.push(chunk)
          },
          onResponseEnd() {
            resolve({ status, body: Buffer.concat(chunks).toString() })
          },
          onResponseError(_controller, error) {
            reject(error)
          },
        },
      )
    })
    expect(modern).toEqual({ status: 200, body: 'hello' })
  })
})

describe('multiplexing and transfers', () => {
  it('100 concurrent POSTs are in flight at once on one connection: the server answers none until all 100 arrived', async () => {
    const held: (() => void)[] = []
    const gathering = await startBackend({
      host: '127.0.0.2',
      handler: (req, res) => {
        let body = ''
        req.on('data', (chunk: Buffer) => (body += chunk))
        req.on('end', () => {
          held.push(() => res.end(body))
          // Sent one at a time, the second POST would wait for the first answer, which never comes.
          if (held.length === 100) for (const answer of held.splice(0)) answer()
        })
      },
    })
    const gatherer = new Client({ connect: { ca: pki.ca }, lookup: tableLookup({ 'api.test': ['127.0.0.2'] }).lookup })
    try {
      const url = `https://api.test:${gathering.port}/gather`
      const bodies = await Promise.all(
        Array.from({ length: 100 }, (_, i) => gatherer.request(url, { method: 'POST', body: `p${i}` }).then((res) => res.body.text())),
      )
      expect(bodies).toEqual(Array.from({ length: 100 }, (_, i) => `p${i}`))
      expect(gathering.connections).toBe(1)
    } finally {
      await gatherer.close()
      await gathering.close()
    }
  })

  it('50 MB upload (streamed) and 50 MB download are byte-exact', async () => {
    const size = 50 * 1024 * 1024
    const data = pattern(size)
    const expected = sha256(data)
    let start = performance.now()
    const upload = await client.request(`${base}/hash`, {
      method: 'POST',
      body: Readable.from(
        (function* () {
          for (let offset = 0; offset < size; offset += 256 * 1024) yield data.subarray(offset, offset + 256 * 1024)
        })(),
      ),
    })
    expect(await upload.body.json()).toEqual({ size, sha256: expected })
    const uploadMs = performance.now() - start
    start = performance.now()
    const download = await client.request(`${base}/bytes?size=${size}`)
    const hash = createHash('sha256')
    let received = 0
    for await (const chunk of download.body) {
      hash.update(chunk)
      received += chunk.length
    }
    const downloadMs = performance.now() - start
    console.log(`50 MB upload ${uploadMs.toFixed(0)} ms, download ${downloadMs.toFixed(0)} ms`)
    expect(received).toBe(size)
    expect(hash.digest('hex')).toBe(expected)
  })

  it('every body type: string, Uint8Array, Readable, async iterable, web ReadableStream, Blob', async () => {
    const bodies: [string, unknown][] = [
      ['string', 'abc'],
      ['Uint8Array', new Uint8Array([97, 98, 99])],
      ['Readable', Readable.from([Buffer.from('a'), Buffer.from('bc')])],
      [
        'async iterable',
        (async function* () {
          yield 'a'
          yield new Uint8Array([98, 99])
        })(),
      ],
      [
        'ReadableStream',
        new ReadableStream({
          start(controller) {
            controller.enqueue(new Uint8Array([97, 98, 99]))
            controller.close()
          },
        }),
      ],
      ['Blob', new Blob(['abc'])],
    ]
    for (const [name, body] of bodies) {
      const res = await client.request(`${base}/echo`, { method: 'POST', body: body as never })
      expect(await res.body.text(), name).toBe('abc')
    }
  })

  it('a slow reader of a large download holds the server back (flow control, bounded memory)', async () => {
    let sent = 0
    let stalled: () => void
    const serverStalled = new Promise<void>((resolve) => (stalled = resolve))
    const total = 256 * 1024 * 1024
    const slow = await startBackend({
      host: '127.0.0.7',
      handler: (_req, res) => {
        const chunk = Buffer.alloc(64 * 1024, 1)
        const pump = () => {
          while (sent < total) {
            sent += chunk.length
            if (!res.write(chunk)) {
              stalled()
              res.once('drain', pump)
              return
            }
          }
          res.end()
        }
        pump()
      },
    })
    const own = new Client({ connect: { ca: pki.ca }, lookup: tableLookup({ 'api.test': ['127.0.0.7'] }).lookup })
    try {
      const res = await own.request(`https://api.test:${slow.port}/`)
      // The caller reads nothing: the server must stall on flow control long before 256 MB.
      await serverStalled
      await new Promise((resolve) => setImmediate(resolve))
      expect(sent).toBeLessThan(16 * 1024 * 1024)
      let received = 0
      for await (const chunk of res.body) received += chunk.length
      expect(received).toBe(total)
    } finally {
      await own.close()
      await slow.close()
    }
  })
})

describe('aborts, resets and trailers', () => {
  const connectionOf = async () => {
    const res = await client.request(`${base}/hello`)
    await res.body.text()
    return res.headers['x-connection']
  }

  it('abort before headers: typed error, the connection serves the next request', async () => {
    const connection = await connectionOf()
    const controller = new AbortController()
    const pending = client.request(`${base}/delay?ms=5000`, { signal: controller.signal })
    setImmediate(() => controller.abort())
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' })
    expect(await connectionOf()).toBe(connection)
  })

  it('abort mid-upload: typed error, connection reused', async () => {
    const connection = await connectionOf()
    const controller = new AbortController()
    const body = new Readable({ read() {} })
    body.push(Buffer.alloc(1024))
    const arrived = once(backend.server, 'stream')
    const pending = client.request(`${base}/hash`, { method: 'POST', body, signal: controller.signal })
    await arrived
    controller.abort(new RequestAbortedError())
    await expect(pending).rejects.toBeInstanceOf(RequestAbortedError)
    expect(await connectionOf()).toBe(connection)
  })

  it('abort mid-download: typed error, connection reused', async () => {
    const connection = await connectionOf()
    const controller = new AbortController()
    const res = await client.request(`${base}/bytes?size=${32 * 1024 * 1024}`, { signal: controller.signal })
    const reading = (async () => {
      for await (const _ of res.body) controller.abort()
    })()
    await expect(reading).rejects.toMatchObject({ name: 'AbortError' })
    expect(await connectionOf()).toBe(connection)
  })

  it('a server RST_STREAM is a typed error and the connection is reused', async () => {
    const connection = await connectionOf()
    await expect(client.request(`${base}/reset`)).rejects.toBeInstanceOf(ProtocolError)
    await expect(client.request(`${base}/reset`)).rejects.toMatchObject({ code: 'DRAINPIPE_PROTOCOL', http2Code: 2 })
    expect(await connectionOf()).toBe(connection)
  })

  it('trailers reach the caller', async () => {
    const res = await client.request(`${base}/trailers`)
    expect(await res.body.text()).toBe('with trailers')
    expect(res.trailers).toMatchObject({ 'grpc-status': '0', 'x-checksum': 'abc' })
  })

  it('bodyTimeout fails a response whose body stops, not before its time', async () => {
    // That it counts from the last chunk is shown on the manual clock below.
    const res = await client.request(`${base}/never`, { bodyTimeout: 100 })
    const started = performance.now()
    await expect(res.body.text()).rejects.toMatchObject({ code: 'DRAINPIPE_BODY_TIMEOUT' })
    expect(performance.now() - started).toBeGreaterThanOrEqual(90)
  })

  it('headersTimeout fails a request whose headers never come', async () => {
    await expect(client.request(`${base}/delay?ms=2000`, { headersTimeout: 50 })).rejects.toMatchObject({
      code: 'DRAINPIPE_HEADERS_TIMEOUT',
    })
  })
})

describe('headers and body timeouts on one timer (manual clock)', () => {
  /** A backend whose /drip response sends a chunk each time the test calls drip(). */
  async function dripping(options: { headersTimeout: number; bodyTimeout: number }) {
    const clock = new ManualClock()
    let drip: (() => void) | undefined
    const server = await startBackend({
      host: '127.0.0.3',
      handler: (req, res) => {
        if (req.url !== '/drip') return false
        res.writeHead(200)
        res.write('a')
        drip = () => res.write('b')
      },
    })
    const timed = new Client({ connect: { ca: pki.ca }, lookup: tableLookup({ 'api.test': ['127.0.0.3'] }).lookup, clock, ...options })
    const res = await timed.request(`https://api.test:${server.port}/drip`)
    const chunks = res.body[Symbol.asyncIterator]()
    let failed: { error: unknown; at: number } | undefined
    const next = async () => {
      try {
        return String((await chunks.next()).value)
      } catch (error) {
        failed = { error, at: clock.now() }
        throw error
      }
    }
    /** The body stalls now: no timeout until `at` on the manual clock, BodyTimeoutError exactly then. */
    const expectBodyTimeoutAt = async (at: number) => {
      const stalled = next().catch(() => {})
      clock.advance(at - 1 - clock.now())
      await new Promise((resolve) => setImmediate(resolve)) // a fired timer's error reaches the body by nextTick
      expect(failed).toBeUndefined()
      clock.advance(1)
      await stalled
      expect(failed?.at).toBe(at)
      expect(failed?.error).toMatchObject({ code: 'DRAINPIPE_BODY_TIMEOUT' })
    }
    return {
      clock,
      next,
      drip: () => drip!(),
      expectBodyTimeoutAt,
      close: async () => {
        await timed.destroy()
        await server.close()
      },
    }
  }

  it('a body timeout shorter than the headers timeout counts from the last chunk', async () => {
    const t = await dripping({ headersTimeout: 10_000, bodyTimeout: 1_000 })
    try {
      expect(await t.next()).toBe('a')
      t.clock.advance(900)
      const b = t.next()
      t.drip()
      expect(await b).toBe('b') // at 900: the body deadline moves to 1,900
      await t.expectBodyTimeoutAt(1_900)
    } finally {
      await t.close()
    }
  })

  it('a headers timeout shorter than the body timeout does not cut a body that keeps within it', async () => {
    const t = await dripping({ headersTimeout: 100, bodyTimeout: 5_000 })
    try {
      expect(await t.next()).toBe('a')
      await t.expectBodyTimeoutAt(5_000) // the headers timer fired at 100 and found the body within its timeout
    } finally {
      await t.close()
    }
  })
})

describe('headers', () => {
  const echoHeaders = async (headers: unknown) => {
    const res = await client.request(`${base}/headers`, { headers: headers as never })
    return (await res.body.json()) as Record<string, string>
  }

  it.each([
    ['CRLF in a value', { 'x-a': 'ok\r\nx-injected: 1' }, 'x-a'],
    ['LF in a value', { 'x-a': 'ok\nmore' }, 'x-a'],
    ['NUL in a value', { 'x-a': 'ok\0' }, 'x-a'],
    ['an invalid name', { 'bad name': 'v' }, 'bad name'],
    ['a name with CRLF', { 'x-a\r\n': 'v' }, 'x-a\r\n'],
    ['a pseudo-header', { ':path': '/other' }, ':path'],
    ['conflicting Content-Type and content-type', [['Content-Type', 'text/plain'], ['content-type', 'application/json']], 'content-type'],
  ])('rejects %s with InvalidHeaderError naming the header', async (_name, headers, header) => {
    const error = await client.request(`${base}/headers`, { headers: headers as never }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(InvalidHeaderError)
    expect((error as InvalidHeaderError).header.toLowerCase()).toBe(header.toLowerCase())
  })

  it('lowercases names, merges duplicates, drops connection headers, maps host to :authority', async () => {
    const seen = await echoHeaders([
      ['X-Multi', 'a'],
      ['x-multi', 'b'],
      ['Cookie', 'a=1'],
      ['cookie', 'b=2'],
      ['Content-Type', 'text/plain'],
      ['content-type', 'text/plain'],
      ['Connection', 'keep-alive'],
      ['Keep-Alive', 'timeout=5'],
      ['Transfer-Encoding', 'chunked'],
      ['Upgrade', 'h2c'],
      ['TE', 'trailers'],
      ['Host', 'alias.test'],
    ])
    expect(seen['x-multi']).toBe('a, b')
    expect(seen.cookie).toBe('a=1; b=2')
    expect(seen['content-type']).toBe('text/plain')
    expect(seen.te).toBe('trailers')
    expect(seen[':authority']).toBe('alias.test')
    for (const name of ['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'host']) expect(seen[name]).toBeUndefined()
  })

  it('bad method and path are typed errors, never exceptions', async () => {
    await expect(client.request(`${base}/hello`, { method: 'GE T' as never })).rejects.toMatchObject({ code: 'DRAINPIPE_INVALID_ARGUMENT' })
    await expect(client.request({ origin: base, path: '/a b', method: 'GET' })).rejects.toMatchObject({ code: 'DRAINPIPE_INVALID_ARGUMENT' })
    await expect(client.request({ origin: 'ftp://x', path: '/', method: 'GET' })).rejects.toMatchObject({ code: 'DRAINPIPE_INVALID_ARGUMENT' })
  })
})

describe('streams limit and queue', () => {
  it("respects the server's SETTINGS_MAX_CONCURRENT_STREAMS with a FIFO queue, bounded by maxQueue", async () => {
    let active = 0
    let peak = 0
    const arrivals: number[] = []
    const limited = await startBackend({
      host: '127.0.0.3',
      settings: { maxConcurrentStreams: 5 },
      handler: (req, res) => {
        arrivals.push(Number(new URL(req.url, 'https://x').searchParams.get('i')))
        active++
        peak = Math.max(peak, active)
        setTimeout(() => {
          active--
          res.end('ok')
        }, 10)
      },
    })
    const limitedClient = new Client({ connect: { ca: pki.ca }, maxQueue: 60, lookup: tableLookup({ 'api.test': ['127.0.0.3'] }).lookup })
    try {
      const url = `https://api.test:${limited.port}/any`
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => limitedClient.request(`${url}?i=${i}`).then((r) => r.body.text())))
      expect(results.every((text) => text === 'ok')).toBe(true)
      expect(peak).toBe(5)
      // One connection, so the server sees the streams in the order the queue let them go: first in, first out.
      expect(arrivals).toEqual(Array.from({ length: 50 }, (_, i) => i))
      const flood = await Promise.allSettled(Array.from({ length: 100 }, () => limitedClient.request(url).then((r) => r.body.text())))
      const rejected = flood.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason)
      expect(rejected.length).toBeGreaterThan(0)
      expect(rejected.every((e) => e instanceof QueueFullError)).toBe(true)
      expect(flood.filter((r) => r.status === 'fulfilled').length).toBeGreaterThanOrEqual(60)
    } finally {
      await limitedClient.close()
      await limited.close()
    }
  })
})

describe('TLS and protocols', () => {
  it('verifies the certificate against the host name when connecting to an IP', async () => {
    const wrong = await startBackend({ host: '127.0.0.4', cert: pki.otherTest })
    const lookup = tableLookup({ 'api.test': ['127.0.0.4'] }).lookup
    const strict = new Client({ connect: { ca: pki.ca }, lookup })
    try {
      const error = await strict.request(`https://api.test:${wrong.port}/hello`).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(ConnectError)
      expect(String((error as Error).cause)).toMatch(/altnames|api\.test/)
      const other = new Client({ connect: { ca: pki.ca }, lookup: tableLookup({ 'other.test': ['127.0.0.4'] }).lookup })
      const res = await other.request(`https://other.test:${wrong.port}/hello`)
      expect(await res.body.text()).toBe('hello')
      await other.close()
    } finally {
      await strict.close()
      await wrong.close()
    }
  })

  it('rejects an unknown CA unless rejectUnauthorized is false', async () => {
    const noCa = new Client({ lookup: tableLookup({ 'api.test': ['127.0.0.2'] }).lookup })
    await expect(noCa.request(`${base}/hello`)).rejects.toBeInstanceOf(ConnectError)
    await noCa.close()
    const insecure = new Client({ connect: { rejectUnauthorized: false }, lookup: tableLookup({ 'api.test': ['127.0.0.2'] }).lookup })
    expect(await (await insecure.request(`${base}/hello`)).body.text()).toBe('hello')
    await insecure.close()
  })

  it('h2c with prior knowledge when h2c is set', async () => {
    const plain = await startBackend({ host: '127.0.0.6', tls: false })
    const h2c = new Client({ h2c: true, lookup: tableLookup({ 'api.test': ['127.0.0.6'] }).lookup })
    try {
      expect(await (await h2c.request(`http://api.test:${plain.port}/hello`)).body.text()).toBe('hello')
      expect(h2c.stats().origins[`http://api.test:${plain.port}`]!.protocol).toBe('h2')
    } finally {
      await h2c.close()
      await plain.close()
    }
  })
})

describe('close and destroy', () => {
  it('close() finishes in-flight requests, then closes; later requests fail typed', async () => {
    const own = new Client({ connect: { ca: pki.ca }, lookup: tableLookup({ 'api.test': ['127.0.0.2'] }).lookup })
    const arrived = once(backend.server, 'stream')
    const inFlight = own.request(`${base}/delay?ms=100`).then((r) => r.body.text())
    await arrived
    const closing = own.close()
    expect(await inFlight).toBe('late')
    await closing
    await expect(own.request(`${base}/hello`)).rejects.toMatchObject({ code: 'DRAINPIPE_CLIENT_CLOSED' })
  })

  it('destroy() cancels in-flight requests at once', async () => {
    const own = new Client({ connect: { ca: pki.ca }, lookup: tableLookup({ 'api.test': ['127.0.0.2'] }).lookup })
    const warm = await own.request(`${base}/hello`)
    await warm.body.text()
    const arrived = once(backend.server, 'stream')
    const inFlight = own.request(`${base}/delay?ms=5000`)
    await arrived
    await own.destroy()
    await expect(inFlight).rejects.toMatchObject({ code: 'DRAINPIPE_CLIENT_CLOSED' })
  })

  it('supports await using (Symbol.asyncDispose)', async () => {
    let disposed: Client
    {
      await using own = new Client({ connect: { ca: pki.ca }, lookup: tableLookup({ 'api.test': ['127.0.0.2'] }).lookup })
      disposed = own
      expect(await (await own.request(`${base}/hello`)).body.text()).toBe('hello')
    }
    await expect(disposed.request(`${base}/hello`)).rejects.toMatchObject({ code: 'DRAINPIPE_CLIENT_CLOSED' })
  })

  it('an Agent and drainpipe can share the process (sanity of the undici peer)', async () => {
    const agent = new Agent({ allowH2: true, connect: { ca: pki.ca, lookup: tableLookup({ 'api.test': ['127.0.0.2'] }).lookup as never } })
    try {
      // Side by side, to the same origin: each answers, each on a connection of its own.
      const [viaAgent, viaClient] = await Promise.all([undiciRequest(`${base}/hello`, { dispatcher: agent }), client.request(`${base}/hello`)])
      expect(await viaAgent.body.text()).toBe('hello')
      expect(await viaClient.body.text()).toBe('hello')
      expect(viaAgent.headers['x-connection']).not.toBe(viaClient.headers['x-connection'])
    } finally {
      await agent.close()
    }
  })
})

/**
 * Regression tests for the failures adversarial testing found, one block per
 * class of mistake. Each test failed on the code before its fix.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import https from 'node:https'
import http2 from 'node:http2'
import net, { type AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import {
  Client,
  ClientClosedError,
  ConnectionLostError,
  ConnectTimeoutError,
  DrainpipeError,
  InvalidOptionError,
  ProtocolError,
  QueueFullError,
  type ClientOptions,
  type FetchInit,
} from '../lib/index.js'
import { record } from './helpers/channels.js'
import { startBackend, tableLookup, type Backend } from './helpers/h2-server.js'
import { ManualClock } from './helpers/manual-clock.js'
import { pki } from './helpers/pki.js'
import { until } from './helpers/processes.js'
import {
  ErrorCode,
  frames,
  headerBlock,
  serveWell,
  Setting,
  startHostileServer,
  FrameType,
  Flag,
  encodeFrame,
  type HostileServer,
  type Script,
} from './hostile/server.js'

const cleanup: (() => Promise<unknown> | unknown)[] = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

function clientFor(host: string, options: ClientOptions = {}): Client {
  const client = new Client({
    connect: { ca: pki.ca },
    lookup: tableLookup({ 'api.test': [host] }).lookup,
    reconnectBackoff: { base: 10, max: 50 },
    ...options,
  })
  cleanup.push(() => client.destroy())
  return client
}

async function hostile(host: string, script: Script, settings?: Parameters<typeof startHostileServer>[0]['settings']): Promise<HostileServer> {
  const server = await startHostileServer({ host, script, settings })
  cleanup.push(() => server.close())
  return server
}

async function backend(options: Parameters<typeof startBackend>[0]): Promise<Backend> {
  const started = await startBackend(options)
  cleanup.push(() => started.close())
  return started
}

/** Lets sockets and timers of the real world run: I/O callbacks and the microtasks they queue. */
const ioTurns = async (turns = 5) => {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve))
}

/** Settles a promise into its outcome, so a test can check how it ended without racing it. */
function settle<T>(promise: Promise<T>): { done: boolean; value?: T; error?: unknown; ready: Promise<void> } {
  const state: { done: boolean; value?: T; error?: unknown; ready: Promise<void> } = { done: false, ready: Promise.resolve() }
  state.ready = promise.then(
    (value) => {
      state.done = true
      state.value = value
    },
    (error: unknown) => {
      state.done = true
      state.error = error
    },
  )
  return state
}

/** Rejects if `promise` takes longer than `ms` of real time: a hang is a failure, not a stuck run. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms)
    }),
  ])
}

describe('class: a stream that ends without END_STREAM', () => {
  // The server promises 1 MiB, sends 64 KiB and resets with NO_ERROR, as Node's `stream.close()` does.
  const truncating: Script = async (c) => {
    for (;;) {
      const id = await c.nextStream()
      c.write(frames.headers(id, [[':status', '200'], ['content-length', String(1 << 20)]]))
      // Four DATA frames of 16 KiB, the largest the client accepts (SETTINGS_MAX_FRAME_SIZE).
      for (let i = 0; i < 4; i++) c.write(frames.data(id, Buffer.alloc(16 * 1024, 1)))
      c.write(frames.rstStream(id, ErrorCode.NO_ERROR))
    }
  }

  it('request(): a body shorter than its content-length is an error, not a success', async () => {
    const server = await hostile('127.0.0.41', truncating)
    const client = clientFor('127.0.0.41')
    const res = await client.request(`https://api.test:${server.port}/big`)
    const error = await res.body.arrayBuffer().then(
      (body) => new Error(`resolved with ${body.byteLength} bytes`),
      (error: unknown) => error,
    )
    expect(error).toBeInstanceOf(ProtocolError)
    expect((error as Error).message).toMatch(/65536 of 1048576 bytes/)
  })

  it('fetch(): the body rejects', async () => {
    const server = await hostile('127.0.0.41', truncating)
    const client = clientFor('127.0.0.41')
    const res = await client.fetch(`https://api.test:${server.port}/big`)
    await expect(res.arrayBuffer()).rejects.toThrow()
  })

  it('stream(): iterating the body rejects', async () => {
    const server = await hostile('127.0.0.41', truncating)
    const client = clientFor('127.0.0.41')
    const res = await client.stream(`https://api.test:${server.port}/big`)
    let received = 0
    const iterate = async () => {
      for await (const chunk of res.body) received += chunk.length
    }
    await expect(iterate()).rejects.toBeInstanceOf(DrainpipeError)
    expect(received).toBeLessThanOrEqual(64 * 1024)
  })
})

describe('class: capacity that grows without a flush', () => {
  /** Answers every POST with its own body, once its END_STREAM arrived, in the order the bodies came. */
  function echoOrder(order: string[]): (c: Parameters<Script>[0]) => void {
    return (c) => {
      c.on('frame', (frame) => {
        if (frame.type === FrameType.DATA && frame.payload.length > 0) {
          order.push(frame.payload.toString())
          c.write(frames.windowUpdate(0, frame.payload.length))
        }
        if ((frame.type === FrameType.DATA || frame.type === FrameType.HEADERS) && frame.flags & Flag.END_STREAM) {
          c.write(Buffer.concat([frames.headers(frame.streamId, [[':status', '200']]), frames.data(frame.streamId, 'ok', true)]))
        }
      })
    }
  }

  it('SETTINGS_MAX_CONCURRENT_STREAMS 0, then 100: the queued requests go out, in FIFO order', async () => {
    const order: string[] = []
    const server = await hostile('127.0.0.42', (c) => echoOrder(order)(c), [[Setting.MAX_CONCURRENT_STREAMS, 0]])
    const client = clientFor('127.0.0.42')
    const url = `https://api.test:${server.port}/post`
    const origin = `https://api.test:${server.port}`
    const sent = ['a', 'b', 'c'].map((body) => settle(client.request(url, { method: 'POST', body })))
    await until(() => client.stats().origins[origin]?.queued === 3, 'three requests queued')
    const connection = await server.connection(1)
    connection.write(frames.settings([[Setting.MAX_CONCURRENT_STREAMS, 100]]))
    await within(Promise.all(sent.map((s) => s.ready)), 5000, 'the queued requests')
    expect(sent.map((s) => s.value?.statusCode)).toEqual([200, 200, 200])
    expect(order).toEqual(['a', 'b', 'c'])
  })

  it('lowered to 0 on an open connection, then raised: the queue is flushed in order', async () => {
    const order: string[] = []
    const server = await hostile('127.0.0.42', (c) => echoOrder(order)(c))
    const client = clientFor('127.0.0.42')
    const url = `https://api.test:${server.port}/post`
    const origin = `https://api.test:${server.port}`
    expect((await client.request(url, { method: 'POST', body: 'first' })).statusCode).toBe(200)
    const connection = await server.connection(1)
    connection.write(frames.settings([[Setting.MAX_CONCURRENT_STREAMS, 0]]))
    await until(() => client.stats().origins[origin]?.pools[0]?.maxConcurrentStreams === 0, 'the client to apply the new limit')
    const sent = ['a', 'b', 'c'].map((body) => settle(client.request(url, { method: 'POST', body })))
    await until(() => client.stats().origins[origin]?.queued === 3, 'three requests queued')
    connection.write(frames.settings([[Setting.MAX_CONCURRENT_STREAMS, 100]]))
    await within(Promise.all(sent.map((s) => s.ready)), 5000, 'the queued requests')
    expect(order).toEqual(['first', 'a', 'b', 'c'])
  })
})

describe('class: a wait for a connection that never ends', () => {
  // Found by the wire fuzzer (test/wire/fuzz.test.ts): a damaged SETTINGS said MAX_CONCURRENT_STREAMS 0.

  it('connections that come up allowing no stream, then fail, again and again: the queued request ends at connectTimeout', async () => {
    // Every connection: SETTINGS with no stream allowed, then the server closes it.
    const server = await hostile('127.0.0.47', (c) => void c.socket.end(), [[Setting.MAX_CONCURRENT_STREAMS, 0]])
    const client = clientFor('127.0.0.47', { connectTimeout: 300, reconnectBackoff: { base: 1, max: 5 } })
    const result = settle(client.request(`https://api.test:${server.port}/x`))
    await within(result.ready, 5000, 'the request')
    expect(result.error).toBeInstanceOf(ConnectTimeoutError)
    expect(server.connections.length).toBeGreaterThan(1)
  })

  it('a connection that allows no stream and stays: the queued request ends at connectTimeout', async () => {
    const server = await hostile('127.0.0.47', () => {}, [[Setting.MAX_CONCURRENT_STREAMS, 0]])
    const clock = new ManualClock()
    const client = clientFor('127.0.0.47', { clock, connectTimeout: 1000 })
    const origin = `https://api.test:${server.port}`
    const result = settle(client.request(`${origin}/x`))
    await until(() => client.stats().origins[origin]?.pools[0]?.state === 'open', 'the connection')
    clock.advance(999)
    await ioTurns()
    expect(result.done).toBe(false)
    clock.advance(1)
    await within(result.ready, 5000, 'the request')
    expect(result.error).toBeInstanceOf(ConnectTimeoutError)
    expect((result.error as ConnectTimeoutError).unprocessed).toBe(true)
  })
})

describe('class: replacement without backoff or demand', () => {
  it('a server that sends GOAWAY on every new session gets no reconnects while nothing is asked of it', async () => {
    let shuttingDown = false
    const server = await hostile('127.0.0.43', (c) => {
      if (shuttingDown) c.write(frames.goaway(0))
      else serveWell(c)
    })
    const client = clientFor('127.0.0.43')
    const url = `https://api.test:${server.port}/x`
    expect((await client.request(url)).statusCode).toBe(200)
    const goaways = record('drainpipe:pool:goaway')
    cleanup.push(() => goaways.stop())
    shuttingDown = true
    const first = goaways.next('drainpipe:pool:goaway')
    ;(await server.connection(1)).write(frames.goaway(1))
    await first
    // A "nothing happens" wait: no request is pending, so no connection may be opened.
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(server.connections.length).toBe(1)
  })

  it('a shard left idle by a GOAWAY comes back with the next requests: light traffic is spread over both backends again', async () => {
    const first = await backend({ host: '127.0.0.58' })
    const second = await startBackend({ host: '127.0.0.59', port: first.port })
    cleanup.push(() => second.close())
    const client = new Client({ connect: { ca: pki.ca }, count: 2, lookup: tableLookup({ 'api.test': ['127.0.0.58', '127.0.0.59'] }).lookup })
    cleanup.push(() => client.destroy())
    const url = `https://api.test:${first.port}/hello`
    const origin = `https://api.test:${first.port}`
    // Each body is read to its end: a response still in flight is demand, and would rightly make the
    // shard reconnect at once after the GOAWAY below.
    const backendOf = async () => {
      const response = await client.request(url)
      await response.body.text()
      return response.headers['x-backend'] as string
    }
    const openAddresses = () => new Set(client.stats().origins[origin]!.pools.filter((p) => p.state === 'open').map((p) => p.address))
    for (let i = 0; i < 4; i++) await backendOf()
    await until(() => openAddresses().size === 2, 'a connection open to each backend')
    // Nothing in flight: the connection to 127.0.0.59 goes away and is not replaced yet.
    second.goaway()
    await until(() => client.stats().origins[origin]!.pools.filter((p) => p.state === 'open').length === 1, 'the GOAWAY to be seen')
    // One request, with nothing else in flight: it wakes the idle shard, which reconnects.
    await backendOf()
    await until(() => openAddresses().size === 2, 'the idle shard to reconnect to 127.0.0.59')
    const seen = new Set<string>()
    for (let i = 0; i < 4; i++) seen.add(await backendOf())
    expect(seen).toEqual(new Set(['127.0.0.58', '127.0.0.59']))
  })

  it('with demand, replacements after GOAWAY back off: bounded connections, a typed unprocessed error', async () => {
    const server = await hostile('127.0.0.43', (c) => c.write(frames.goaway(0)))
    const clock = new ManualClock()
    const client = clientFor('127.0.0.43', { clock, reconnectBackoff: { base: 1000, max: 8000 } })
    const result = settle(client.request(`https://api.test:${server.port}/x`))
    // Without advancing the clock, only attempts that need no backoff can happen.
    await until(() => server.connections.length >= 1, 'a first connection')
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(server.connections.length).toBeLessThanOrEqual(2)
    // Each backoff that passes allows one more connection: wait for it (or the request's end) each time.
    for (let i = 0; i < 20 && !result.done; i++) {
      const before = server.connections.length
      clock.advance(8000)
      await until(() => result.done || server.connections.length > before, 'the next attempt after a backoff')
    }
    await within(result.ready, 5000, 'the request')
    expect(result.error).toBeInstanceOf(DrainpipeError)
    expect((result.error as DrainpipeError).unprocessed).toBe(true)
    expect(server.connections.length).toBeLessThanOrEqual(5)
  })
})

describe('class: a deadline that outlives what it guards', () => {
  it('once a usable connection exists, waiting for a stream slot is not bounded by connectTimeout', async () => {
    const release: (() => void)[] = []
    const server = await backend({
      host: '127.0.0.44',
      settings: { maxConcurrentStreams: 5 },
      handler: (req, res) => {
        if (req.url !== '/hold') return false
        release.push(() => res.end('done'))
      },
    })
    const clock = new ManualClock()
    const client = clientFor('127.0.0.44', { clock, connectTimeout: 1000 })
    const base = `https://api.test:${server.port}`
    expect((await client.request(`${base}/hello`)).statusCode).toBe(200)
    // The connection drops; requests made now wait for the reconnect.
    for (const session of server.sessions) session.destroy()
    await until(() => (client.stats().origins[base]?.pools.length ?? 0) === 0, 'the connection to be noticed lost')
    const held = Array.from({ length: 20 }, () => settle(client.request(`${base}/hold`)))
    clock.advance(50) // the reconnect backoff (at most 50 ms)
    await until(() => release.length === 5, 'five streams to reach the server')
    clock.advance(1500) // past connectTimeout: the 15 still queued wait for slots, not for a connection
    await ioTurns()
    expect(held.filter((h) => h.done)).toEqual([])
    while (held.some((h) => !h.done)) {
      release.splice(0).forEach((answer) => answer())
      await until(() => release.length > 0 || held.every((h) => h.done), 'the next slots')
    }
    expect(held.map((h) => h.value?.statusCode)).toEqual(Array(20).fill(200))
  })

  it('every request waits for a connection at most connectTimeout, also with count > 1 and reconnects in backoff', async () => {
    // Accepts TCP, reads, never answers TLS.
    const silent = net.createServer((socket) => socket.on('error', () => {}).resume())
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.45', resolve))
    cleanup.push(() => new Promise((resolve) => silent.close(resolve)))
    const port = (silent.address() as AddressInfo).port
    const clock = new ManualClock()
    const client = clientFor('127.0.0.45', { clock, count: 8, connectTimeout: 500, reconnectBackoff: { base: 250, max: 30_000 } })
    const started: { at: number; outcome: ReturnType<typeof settle> }[] = []
    for (let t = 0; t <= 2000; t += 100) {
      if (t % 300 === 0) started.push({ at: clock.now(), outcome: settle(client.request(`https://api.test:${port}/x`)) })
      await ioTurns()
      clock.advance(100)
      await ioTurns()
      for (const { at, outcome } of started) {
        if (clock.now() - at >= 500) {
          await ioTurns()
          expect(outcome.done, `a request started at ${at} ms still waits at ${clock.now()} ms`).toBe(true)
          expect((outcome.error as Error).message).toMatch(/500 ms/)
        }
      }
    }
  })

  it('a GOAWAY then silence: the stream ends at the PING deadline, not at drainTimeout', async () => {
    const server = await hostile('127.0.0.46', async (c) => {
      c.answerPings = false
      const id = await c.nextStream()
      c.write(frames.goaway(id))
    })
    const clock = new ManualClock()
    const client = clientFor('127.0.0.46', { clock, keepAlive: { interval: 1000, timeout: 500 }, drainTimeout: 8000 })
    const goaways = record('drainpipe:pool:goaway')
    cleanup.push(() => goaways.stop())
    const received = goaways.next('drainpipe:pool:goaway')
    const result = settle(client.request(`https://api.test:${server.port}/x`))
    await received
    const connection = await server.connection(1)
    clock.advance(1000)
    await connection.frame((frame) => frame.type === FrameType.PING && !(frame.flags & Flag.ACK))
    clock.advance(500)
    await within(result.ready, 2000, 'the request')
    expect(result.error).toBeInstanceOf(ConnectionLostError)
  })
})

describe('class: work scheduled after close()', () => {
  async function lostConnection(options: ClientOptions) {
    const server = await backend({ host: '127.0.0.47' })
    const clock = new ManualClock()
    const client = clientFor('127.0.0.47', { clock, reconnectBackoff: { base: 1000, max: 1000 }, ...options })
    const base = `https://api.test:${server.port}`
    expect((await client.request(`${base}/hello`)).statusCode).toBe(200)
    for (const session of server.sessions) session.destroy()
    await until(() => (client.stats().origins[base]?.pools.length ?? 0) === 0, 'the connection to be noticed lost')
    return { client, clock, base }
  }

  for (const connectTimeout of [10_000, 0]) {
    it(`close() during a reconnect backoff settles the queued request at once and never hangs (connectTimeout ${connectTimeout})`, async () => {
      const { client, base } = await lostConnection({ connectTimeout })
      const queued = settle(client.request(`${base}/hello`))
      await ioTurns()
      await within(client.close(), 2000, 'close()')
      await within(queued.ready, 1000, 'the queued request')
      if (queued.error) expect(queued.error).toBeInstanceOf(ClientClosedError)
      else expect(queued.value?.statusCode).toBe(200)
    })
  }

  it('close() while a successor is still connecting leaves no timer behind', async () => {
    let releaseHandshake!: () => void
    const held = new Promise<void>((resolve) => (releaseHandshake = resolve))
    const server = await backend({ host: '127.0.0.48', acceptWhen: (n) => (n === 2 ? held : Promise.resolve()) })
    const clock = new ManualClock()
    const client = clientFor('127.0.0.48', { clock, maxConnectionAge: 1000, maxConnectionAgeJitter: 0 })
    const base = `https://api.test:${server.port}`
    expect((await client.request(`${base}/hello`)).statusCode).toBe(200)
    clock.advance(1000)
    await until(() => server.server.listenerCount('connection') > 0 && (client.stats().origins[base]?.pools.length ?? 0) === 2, 'a successor connecting')
    const closing = client.close()
    releaseHandshake()
    await within(closing, 3000, 'close()')
    expect(clock.pending()).toEqual([])
  })

  it('destroy() while a successor is still connecting leaves no timer behind', async () => {
    let releaseHandshake!: () => void
    const held = new Promise<void>((resolve) => (releaseHandshake = resolve))
    const server = await backend({ host: '127.0.0.48', acceptWhen: (n) => (n === 2 ? held : Promise.resolve()) })
    const clock = new ManualClock()
    const client = clientFor('127.0.0.48', { clock, maxConnectionAge: 1000, maxConnectionAgeJitter: 0 })
    const base = `https://api.test:${server.port}`
    expect((await client.request(`${base}/hello`)).statusCode).toBe(200)
    clock.advance(1000)
    await until(() => (client.stats().origins[base]?.pools.length ?? 0) === 2, 'a successor connecting')
    const destroying = client.destroy()
    releaseHandshake()
    await within(destroying, 3000, 'destroy()')
    expect(clock.pending()).toEqual([])
  })
})

describe('class: an option value that disables what it limits', () => {
  it('maxQueue: 0 is rejected, naming the option', () => {
    expect(() => new Client({ maxQueue: 0 })).toThrow(InvalidOptionError)
    expect(() => new Client({ maxQueue: 0 })).toThrow(/maxQueue/)
  })
})

describe('class: one address of a lookup taken for the origin', () => {
  it('a connect that fails on the first address tries the next ones of the same lookup', async () => {
    const server = await backend({ host: '127.0.0.49' })
    // Nothing listens on 127.0.0.50: the first address refuses, as ::1 does for a server on 127.0.0.1 only.
    const client = new Client({
      connect: { ca: pki.ca },
      lookup: tableLookup({ 'api.test': ['127.0.0.50', '127.0.0.49'] }).lookup,
    })
    cleanup.push(() => client.destroy())
    const res = await client.request(`https://api.test:${server.port}/hello`)
    expect(res.statusCode).toBe(200)
    expect(await res.body.text()).toBe('hello')
  })
})

describe('class: a protocol decided once for an origin', () => {
  it('an origin that moves from h2 to HTTP/1.1 is served over HTTP/1.1', async () => {
    const h2 = await startBackend({ host: '127.0.0.51' })
    const port = h2.port
    const client = clientFor('127.0.0.51')
    const base = `https://api.test:${port}`
    expect((await client.request(`${base}/hello`)).statusCode).toBe(200)
    await h2.close()
    const h1 = https.createServer({ ...pki.apiTest }, (req, res) => res.end(`h1 ${req.httpVersion}`))
    await new Promise<void>((resolve) => h1.listen(port, '127.0.0.51', resolve))
    cleanup.push(() => new Promise((resolve) => h1.close(resolve)))
    await until(() => (client.stats().origins[base]?.pools.length ?? 0) === 0, 'the h2 connection to be noticed gone')
    const res = await within(client.request(`${base}/hello`), 5000, 'a request after the switch')
    expect(await res.body.text()).toBe('h1 1.1')
    expect(client.stats().origins[base]?.protocol).toBe('http/1.1')
  })
})

describe('class: the HTTP/1.1 fallback outside the limits', () => {
  async function http1Server(handler: (req: IncomingMessage, res: ServerResponse) => void) {
    const sockets = new Set<net.Socket>()
    let connections = 0
    const server = http.createServer(handler)
    server.on('connection', (socket) => {
      connections++
      sockets.add(socket)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.52', resolve))
    cleanup.push(() => {
      for (const socket of sockets) socket.destroy()
      return new Promise((resolve) => server.close(resolve))
    })
    return { port: (server.address() as AddressInfo).port, connections: () => connections }
  }

  it('count: 2 means at most two HTTP/1.1 connections', async () => {
    const server = await http1Server((_req, res) => setTimeout(() => res.end('ok'), 5))
    const client = clientFor('127.0.0.52', { count: 2 })
    const results = await Promise.all(
      Array.from({ length: 300 }, () => client.request(`http://api.test:${server.port}/x`).then((res) => res.body.text())),
    )
    expect(results.every((body) => body === 'ok')).toBe(true)
    expect(server.connections()).toBeLessThanOrEqual(2)
  })

  it('maxQueue bounds the requests waiting for an HTTP/1.1 connection', async () => {
    const release: (() => void)[] = []
    const server = await http1Server((_req, res) => release.push(() => res.end('ok')))
    const client = clientFor('127.0.0.52', { count: 2, maxQueue: 10 })
    const outcomes = Array.from({ length: 50 }, () => settle(client.request(`http://api.test:${server.port}/x`)))
    await until(() => outcomes.filter((o) => o.done).length === 38, '38 requests refused')
    expect(outcomes.filter((o) => o.error instanceof QueueFullError)).toHaveLength(38)
    while (outcomes.some((o) => !o.done)) {
      release.splice(0).forEach((answer) => answer())
      await until(() => release.length > 0 || outcomes.every((o) => o.done), 'the next requests on the freed connections')
    }
    expect(outcomes.filter((o) => o.value?.statusCode === 200)).toHaveLength(12)
  })
})

describe('class: a fixed body taken for a stream', () => {
  const bodies: [string, () => Blob | URLSearchParams | FormData, number | undefined][] = [
    ['Blob', () => new Blob([Buffer.alloc(100 * 1024, 7)]), 100 * 1024],
    ['URLSearchParams', () => new URLSearchParams({ a: '1', b: 'x'.repeat(2000) }), undefined],
    ['FormData', () => { const form = new FormData(); form.append('field', 'value'); form.append('file', new Blob([Buffer.alloc(50_000, 3)]), 'f.bin'); return form }, undefined],
  ]
  for (const [name, make, size] of bodies) {
    it(`${name}: sent with content-length, and replayed after REFUSED_STREAM beyond retryBufferSize`, async () => {
      let attempts = 0
      const seen: { length: string | undefined; received: number }[] = []
      const server = await backend({
        host: '127.0.0.53',
        handler: (req, res) => {
          if (++attempts === 1) {
            res.stream.close(http2.constants.NGHTTP2_REFUSED_STREAM)
            return
          }
          let received = 0
          req.on('data', (chunk: Buffer) => (received += chunk.length))
          req.on('end', () => {
            seen.push({ length: req.headers['content-length'], received })
            res.end('ok')
          })
        },
      })
      const client = clientFor('127.0.0.53', { retryBufferSize: 1024 })
      const res = await client.request(`https://api.test:${server.port}/upload`, { method: 'POST', body: make() })
      expect(await res.body.text()).toBe('ok')
      expect(attempts).toBe(2)
      expect(seen).toHaveLength(1)
      expect(seen[0]!.length).toBe(String(seen[0]!.received))
      if (size !== undefined) expect(seen[0]!.received).toBe(size)
    })
  }
})

describe('class: a fixed body taken for a stream (the other views of bytes)', () => {
  it('a Float32Array and a DataView are sent as the bytes they view, with content-length', async () => {
    const seen: { length: string | undefined; body: Buffer }[] = []
    const server = await backend({
      host: '127.0.0.53',
      handler: (req, res) => {
        const chunks: Buffer[] = []
        req.on('data', (chunk: Buffer) => chunks.push(chunk))
        req.on('end', () => {
          seen.push({ length: req.headers['content-length'], body: Buffer.concat(chunks) })
          res.end('ok')
        })
      },
    })
    const client = clientFor('127.0.0.53')
    const floats = new Float32Array([1.5, -2.25])
    const backing = Buffer.from('..view..')
    const view = new DataView(backing.buffer, backing.byteOffset + 2, 4)
    for (const body of [floats, view]) {
      expect(await (await client.request(`https://api.test:${server.port}/x`, { method: 'POST', body })).body.text()).toBe('ok')
    }
    expect(seen.map((s) => s.length)).toEqual(['8', '4'])
    expect(seen[0]!.body).toEqual(Buffer.from(floats.buffer))
    expect(seen[1]!.body.toString()).toBe('view')
  })
})

describe('class: words that name the wrong thing', () => {
  const resets: [string, number][] = [
    ['INTERNAL_ERROR', http2.constants.NGHTTP2_INTERNAL_ERROR],
    ['PROTOCOL_ERROR', http2.constants.NGHTTP2_PROTOCOL_ERROR],
    ['CANCEL', http2.constants.NGHTTP2_CANCEL],
  ]
  for (const [name, code] of resets) {
    it(`a server reset with ${name} is called ${name}`, async () => {
      const server = await backend({ host: '127.0.0.54', handler: (_req, res) => res.stream.close(code) })
      const client = clientFor('127.0.0.54')
      const error = await client.request(`https://api.test:${server.port}/x`).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(ProtocolError)
      expect((error as Error).message).toContain(name)
      expect((error as Error).message).not.toMatch(/NGHTTP2_/)
    })
  }

  it('REFUSED_STREAM after the response started is called REFUSED_STREAM', async () => {
    const server = await hostile('127.0.0.54', async (c) => {
      const id = await c.nextStream()
      c.write(frames.headers(id, [[':status', '200']]))
      c.write(frames.data(id, 'part'))
      c.write(frames.rstStream(id, ErrorCode.REFUSED_STREAM))
    })
    const client = clientFor('127.0.0.54')
    const res = await client.request(`https://api.test:${server.port}/x`)
    const error = await res.body.text().then(
      (text) => new Error(`resolved: ${text}`),
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(ProtocolError)
    expect((error as Error).message).toContain('REFUSED_STREAM')
    expect((error as Error).message).not.toMatch(/NGHTTP2_/)
  })

  it('a content-length the body does not match is not blamed on a server reset', async () => {
    const server = await hostile('127.0.0.55', async (c) => {
      const id = await c.nextStream()
      c.write(frames.headers(id, [[':status', '200'], ['content-length', '10']]))
      c.write(frames.data(id, 'short', true))
    })
    const client = clientFor('127.0.0.55')
    const outcome = await client.request(`https://api.test:${server.port}/x`).then(
      (res) => res.body.text().then((text) => new Error(`resolved: ${text}`), (e: unknown) => e),
      (e: unknown) => e,
    )
    expect(outcome).toBeInstanceOf(ProtocolError)
    expect((outcome as Error).message).toMatch(/content-length/)
    expect((outcome as Error).message).not.toMatch(/server reset/)
  })

  it('more response header fields than the limit: named as the limit, and the limit can be raised', async () => {
    const fields: [string, string][] = [[':status', '200']]
    for (let i = 0; i < 200; i++) fields.push([`x-field-${i}`, 'v'])
    const server = await hostile('127.0.0.55', async (c) => {
      for (;;) {
        const id = await c.nextStream()
        c.write(encodeFrame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, id, headerBlock(fields)))
      }
    })
    const strict = clientFor('127.0.0.55')
    const error = await strict.request(`https://api.test:${server.port}/x`).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ProtocolError)
    expect((error as Error).message).toMatch(/header fields/)
    expect((error as Error).message).not.toMatch(/server reset/)
    const lenient = clientFor('127.0.0.55', { maxHeaderFields: 300 } as ClientOptions)
    const res = await lenient.request(`https://api.test:${server.port}/x`)
    expect(res.headers['x-field-199']).toBe('v')
  })

  it("a recycle for maxRequestsPerConnection says reason 'requests'", async () => {
    const server = await backend({ host: '127.0.0.56' })
    const client = clientFor('127.0.0.56', { maxRequestsPerConnection: 2 })
    const recycles = record('drainpipe:pool:recycle')
    cleanup.push(() => recycles.stop())
    const recycled = recycles.next('drainpipe:pool:recycle')
    for (let i = 0; i < 2; i++) await (await client.request(`https://api.test:${server.port}/hello`)).body.text()
    expect((await recycled).reason).toBe('requests')
  })
})

describe("class: the platform's body types through a second undici copy", () => {
  it("client.fetch() sends Node's global FormData as multipart", async () => {
    const server = await backend({
      host: '127.0.0.57',
      handler: (req, res) => {
        const chunks: Buffer[] = []
        req.on('data', (chunk: Buffer) => chunks.push(chunk))
        req.on('end', () => res.end(JSON.stringify({ type: req.headers['content-type'], body: Buffer.concat(chunks).toString('latin1') })))
      },
    })
    const client = clientFor('127.0.0.57')
    const form = new globalThis.FormData()
    form.append('greeting', 'hello')
    form.append('file', new globalThis.File(['file body'], 'a.txt', { type: 'text/plain' }))
    const res = await client.fetch(`https://api.test:${server.port}/form`, { method: 'POST', body: form })
    const { type, body } = (await res.json()) as { type: string; body: string }
    expect(type).toMatch(/^multipart\/form-data; boundary=/)
    expect(body).toContain('name="greeting"')
    expect(body).toContain('hello')
    expect(body).toContain('filename="a.txt"')
    expect(body).toContain('file body')
  })

  it('client.fetch() accepts Blob, File, URLSearchParams, ReadableStream and typed arrays of the platform', async () => {
    const server = await backend({
      host: '127.0.0.57',
      handler: (req, res) => {
        const chunks: Buffer[] = []
        req.on('data', (chunk: Buffer) => chunks.push(chunk))
        req.on('end', () => res.end(Buffer.concat(chunks)))
      },
    })
    const client = clientFor('127.0.0.57')
    const url = `https://api.test:${server.port}/echo`
    const cases: [BodyInit, string][] = [
      [new globalThis.Blob(['blob']), 'blob'],
      [new globalThis.File(['file'], 'f.txt'), 'file'],
      [new globalThis.URLSearchParams({ q: 'a b' }), 'q=a+b'],
      [new Uint8Array([104, 105]), 'hi'],
      [new globalThis.ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode('stream')); c.close() } }), 'stream'],
    ]
    for (const [body, expected] of cases) {
      const init = { method: 'POST', body, ...(body instanceof globalThis.ReadableStream ? { duplex: 'half' } : {}) }
      const res = await client.fetch(url, init as FetchInit)
      expect(await res.text()).toBe(expected)
    }
  })
})


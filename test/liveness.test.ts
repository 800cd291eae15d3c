import http2 from 'node:http2'
import { once } from 'node:events'
import { afterEach, describe, expect, it } from 'vitest'
import { Client, ConnectionLostError, type ClientOptions } from '../lib/index.js'
import { record } from './helpers/channels.js'
import { startBackend, tableLookup, type Backend } from './helpers/h2-server.js'
import { ManualClock } from './helpers/manual-clock.js'
import { pki } from './helpers/pki.js'
import { until } from './helpers/processes.js'
import { startTcpProxy } from './helpers/tcp-proxy.js'

const cleanup: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

/** client → proxy (127.0.0.9:P) → backend; the origin is https://api.test:P. */
async function throughProxy(options: ClientOptions, backendOptions: Parameters<typeof startBackend>[0] = {}) {
  const backend = await startBackend({ host: '127.0.0.8', ...backendOptions })
  const proxy = await startTcpProxy({ target: { host: backend.host, port: backend.port }, host: '127.0.0.9' })
  const client = new Client({ connect: { ca: pki.ca }, lookup: tableLookup({ 'api.test': ['127.0.0.9'] }).lookup, ...options })
  cleanup.push(async () => {
    await client.destroy()
    await proxy.close()
    await backend.close()
  })
  return { backend, proxy, client, base: `https://api.test:${proxy.port}`, origin: `https://api.test:${proxy.port}` }
}

const hello = async (client: Client, base: string) => (await client.request(`${base}/hello`)).body.text()

describe('PING liveness', () => {
  it('blackholed mid-stream: ConnectionLostError within interval + timeout, then a new connection serves', async () => {
    const { client, proxy, base } = await throughProxy({ keepAlive: { interval: 1000, timeout: 500 } })
    expect(await hello(client, base)).toBe('hello')
    const events = record('drainpipe:pool:ping-timeout')
    cleanup.push(async () => events.stop())
    const res = await client.request(`${base}/never`)
    const reading = res.body.text()
    await once(res.body, 'data') // the stream is live
    const start = performance.now()
    proxy.mode('blackhole')
    const error = await reading.catch((e: unknown) => e)
    const detected = performance.now() - start
    console.log(`blackhole detected after ${detected.toFixed(0)} ms (interval 1000, timeout 500)`)
    expect(error).toBeInstanceOf(ConnectionLostError)
    expect((error as ConnectionLostError).unprocessed).toBe(false)
    expect(detected).toBeLessThan(1500 + 300)
    expect(detected).toBeGreaterThan(500)
    expect(events.of('drainpipe:pool:ping-timeout')).toHaveLength(1)
    expect(client.stats().pingTimeouts).toBe(1)
    proxy.mode('forward')
    expect(await hello(client, base)).toBe('hello')
    expect(proxy.connections).toBe(2)
  })

  it('with the defaults a dead connection is declared at 30 s + 10 s of quiet (injected clock)', async () => {
    const clock = new ManualClock()
    const { client, proxy, base, origin } = await throughProxy({ clock })
    const res = await client.request(`${base}/never`)
    const reading = res.body.text()
    await once(res.body, 'data')
    proxy.mode('blackhole')
    clock.advance(29_999)
    expect(proxy.bytesDiscarded.clientToServer).toBe(0)
    const pingSent = once(proxy, 'discard')
    clock.advance(1) // 30 s without a frame: PING
    await pingSent
    clock.advance(9_999)
    expect(client.stats().origins[origin]!.pools[0]!.state).toBe('open')
    clock.advance(1) // 10 s without ACK: dead
    await expect(reading).rejects.toBeInstanceOf(ConnectionLostError)
    expect(client.stats().pingTimeouts).toBe(1)
  })

  it('an idle blackholed connection is not pinged by default; with whenIdle it is detected', async () => {
    const clock = new ManualClock()
    const quiet = await throughProxy({ clock, keepAlive: { interval: 1000, timeout: 500 } })
    expect(await hello(quiet.client, quiet.base)).toBe('hello')
    await until(() => quiet.client.stats().origins[quiet.origin]!.pools[0]!.inFlight === 0, 'the stream to close')
    quiet.proxy.mode('blackhole')
    clock.advance(5000)
    // "Nothing happens": a turn of the event loop for a PING written in the advance to show. The manual clock
    // is what makes the check hold: a PING sent at 1 s would have timed out at 1.5 s within the same advance.
    await new Promise((resolve) => setImmediate(resolve))
    expect(quiet.proxy.bytesDiscarded.clientToServer).toBe(0)
    expect(quiet.client.stats().pingTimeouts).toBe(0)

    const watched = await throughProxy({ clock, keepAlive: { interval: 1000, timeout: 500, whenIdle: true } })
    expect(await hello(watched.client, watched.base)).toBe('hello')
    watched.proxy.mode('blackhole')
    const events = record('drainpipe:pool:ping-timeout')
    cleanup.push(async () => events.stop())
    const pinged = once(watched.proxy, 'discard')
    clock.advance(1000)
    await pinged
    const dead = events.next('drainpipe:pool:ping-timeout')
    clock.advance(500)
    expect((await dead).timeout).toBe(500)
    expect(watched.client.stats().pingTimeouts).toBe(1)
  })

  it('a request timeout probes at once with a 2 s deadline, and the loss names that deadline, not keepAlive.timeout (injected clock)', async () => {
    const clock = new ManualClock()
    const { client, proxy, base } = await throughProxy({ clock, keepAlive: { interval: 30_000, timeout: 10_000 } })
    const res = await client.request(`${base}/never`)
    const reading = res.body.text()
    await once(res.body, 'data')
    proxy.mode('blackhole')
    const events = record('drainpipe:pool:ping-timeout')
    cleanup.push(async () => events.stop())
    const timedOut = client.request(`${base}/hello`, { headersTimeout: 1_000 })
    const probed = once(proxy, 'discard')
    clock.advance(1_000) // the headers timeout: the connection is suspect, a PING goes out now
    await expect(timedOut).rejects.toMatchObject({ code: 'DRAINPIPE_HEADERS_TIMEOUT' })
    await probed
    const dead = events.next('drainpipe:pool:ping-timeout')
    clock.advance(1_999)
    expect(events.of('drainpipe:pool:ping-timeout')).toHaveLength(0)
    clock.advance(1)
    expect((await dead).timeout).toBe(2_000)
    const lost = await reading.catch((error: unknown) => error)
    expect(lost).toBeInstanceOf(ConnectionLostError)
    expect((lost as Error).message).toContain('within 2000 ms (the probe after a request timed out)')
  })

  it("a server's too_many_pings GOAWAY doubles the interval for that origin, without failed requests", async () => {
    let pings = 0
    const backend = await startBackend({ host: '127.0.0.8' })
    backend.server.on('session', (session: http2.ServerHttp2Session) => {
      session.on('ping', () => {
        pings++
        session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, 0, Buffer.from('too_many_pings'))
      })
    })
    const clock = new ManualClock()
    const client = new Client({
      connect: { ca: pki.ca },
      lookup: tableLookup({ 'api.test': ['127.0.0.8'] }).lookup,
      clock,
      keepAlive: { interval: 1000, timeout: 500, whenIdle: true },
    })
    cleanup.push(async () => {
      await client.destroy()
      await backend.close()
    })
    const base = `https://api.test:${backend.port}`
    const origin = base
    const events = record('drainpipe:pool:ping-backoff')
    cleanup.push(async () => events.stop())
    expect(await hello(client, base)).toBe('hello')
    const backedOff = events.next('drainpipe:pool:ping-backoff')
    clock.advance(1000)
    expect((await backedOff).interval).toBe(2000)
    expect(client.stats().origins[origin]!.pingInterval).toBe(2000)
    for (let i = 0; i < 5; i++) expect(await hello(client, base)).toBe('hello')
    expect(pings).toBe(1)
  })
})

describe('idle timeout', () => {
  it('a pool with no streams for idleTimeout closes gracefully; the next request starts a new one', async () => {
    const clock = new ManualClock()
    const backend = await startBackend({ host: '127.0.0.8' })
    const client = new Client({ connect: { ca: pki.ca }, lookup: tableLookup({ 'api.test': ['127.0.0.8'] }).lookup, clock, idleTimeout: 5000 })
    cleanup.push(async () => {
      await client.destroy()
      await backend.close()
    })
    const base = `https://api.test:${backend.port}`
    expect(await hello(client, base)).toBe('hello')
    const events = record('drainpipe:pool:close')
    cleanup.push(async () => events.stop())
    const closed = events.next('drainpipe:pool:close')
    await until(() => client.stats().origins[base]!.pools[0]!.inFlight === 0, 'the stream to close')
    clock.advance(5000)
    expect((await closed).reason).toBe('idle-timeout')
    expect(await hello(client, base)).toBe('hello')
    expect(backend.connections).toBe(2)
  })
})

describe('reconnect backoff', () => {
  it('connect failures space out exponentially with full jitter; a long-lived pool resets the backoff', async () => {
    const clock = new ManualClock()
    let backend: Backend | undefined = await startBackend({ host: '127.0.0.8' })
    const port = backend.port
    const client = new Client({
      connect: { ca: pki.ca },
      lookup: tableLookup({ 'api.test': ['127.0.0.8'] }).lookup,
      clock,
      random: () => 1, // the top of each window, so the delays are the ceilings
      keepAlive: false,
      connectTimeout: 0,
      reconnectBackoff: { base: 100, max: 1600 },
    })
    cleanup.push(async () => {
      await client.destroy()
      await backend?.close()
    })
    const base = `https://api.test:${port}`
    const events = record('drainpipe:pool:connect-failed', 'drainpipe:pool:close', 'drainpipe:pool:connect')
    cleanup.push(async () => events.stop())
    expect(await hello(client, base)).toBe('hello')
    const lost = events.next('drainpipe:pool:close')
    await backend.close()
    backend = undefined
    await lost
    // The origin was up: a request now waits while the shard reconnects with backoff.
    const waiting = hello(client, base)
    const nextDelay = async () => {
      await until(() => clock.pending().length > 0, 'a reconnect timer')
      return clock.pending()[0]!
    }
    const delays: number[] = []
    for (let i = 0; i < 6; i++) {
      const delay = await nextDelay()
      delays.push(delay)
      const failed = events.next('drainpipe:pool:connect-failed')
      clock.advance(delay)
      await failed
    }
    expect(delays).toEqual([100, 200, 400, 800, 1600, 1600])
    backend = await startBackend({ host: '127.0.0.8', port })
    const connected = events.next('drainpipe:pool:connect')
    clock.advance(await nextDelay())
    await connected
    expect(await waiting).toBe('hello')
    // Up for longer than the backoff window: the next loss starts again from the base.
    clock.advance(1600)
    const lostAgain = events.next('drainpipe:pool:close')
    await backend.close()
    backend = undefined
    await lostAgain
    const again = hello(client, base).catch((error: unknown) => error)
    expect(await nextDelay()).toBe(100)
    await client.destroy()
    expect(await again).toMatchObject({ code: 'DRAINPIPE_CLIENT_CLOSED' })
  })

  it('while one shard has lost its connection, requests go to the other pools', async () => {
    const healthy = await startBackend({ host: '127.0.0.8' })
    let dying: Backend | undefined = await startBackend({ host: '127.0.0.10', port: healthy.port })
    const client = new Client({ connect: { ca: pki.ca }, count: 2, lookup: tableLookup({ 'api.test': ['127.0.0.8', '127.0.0.10'] }).lookup })
    cleanup.push(async () => {
      await client.destroy()
      await healthy.close()
      await dying?.close()
    })
    const base = `https://api.test:${healthy.port}`
    await Promise.all(Array.from({ length: 10 }, () => hello(client, base)))
    await dying.close()
    dying = undefined
    // The shard on 127.0.0.10 lost its connection; with nothing waiting it does not reconnect.
    await until(() => client.stats().origins[base]?.pools.length === 1, 'the lost connection to be noticed')
    const before = healthy.requests
    const results = await Promise.allSettled(Array.from({ length: 50 }, () => hello(client, base)))
    expect(results.filter((r) => r.status === 'rejected')).toEqual([])
    expect(healthy.requests - before).toBe(50)
  })
})

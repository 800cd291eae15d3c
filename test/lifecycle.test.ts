import http2 from 'node:http2'
import { once } from 'node:events'
import { afterEach, describe, expect, it } from 'vitest'
import { Client, DrainTimeoutError, ReadOnlyError, RefusedStreamError, type ClientOptions, type RequestOptions } from '../lib/index.js'
import { record } from './helpers/channels.js'
import { startBackend, startBackends, tableLookup, type Backend } from './helpers/h2-server.js'
import { ManualClock } from './helpers/manual-clock.js'
import { pki } from './helpers/pki.js'
import { until } from './helpers/processes.js'

const cleanup: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

async function setup(
  backends: Backend[],
  options: ClientOptions = {},
  table: Record<string, string[]> = { 'api.test': backends.map((backend) => backend.host) },
) {
  const dns = tableLookup(table)
  const client = new Client({ connect: { ca: pki.ca }, lookup: dns.lookup, ...options })
  cleanup.push(async () => {
    await client.destroy()
    await Promise.all(backends.map((backend) => backend.close()))
  })
  return { client, dns, base: `https://api.test:${backends[0]!.port}` }
}

const text = async (client: Client, url: string, options: RequestOptions = {}) => {
  const res = await client.request(url, options)
  return { body: await res.body.text(), headers: res.headers }
}

const poolStates = (client: Client, origin: string) => client.stats().origins[origin]?.pools.map((pool) => pool.state) ?? []

describe('recycling under load', () => {
  it('≥ 2,000 mixed requests with maxConnectionAge 100, until ≥ 10 recycles: 0 failures, every POST processed once', async () => {
    const backends = await startBackends(2)
    const { client, base } = await setup(backends, { maxConnectionAge: 100, count: 2 })
    const events = record('drainpipe:pool:recycle')
    cleanup.push(async () => events.stop())
    let failures = 0
    let next = 0
    const latencies: number[] = []
    // The load runs until both 2,000 requests and 10 recycles are done: how
    // many recycles fit in 2,000 requests depends on the machine's speed.
    const enough = () => next >= 2000 && client.stats().recycles.ok >= 10
    const deadline = performance.now() + 20_000
    const worker = async () => {
      while (!enough() && performance.now() < deadline) {
        const id = next++
        const start = performance.now()
        try {
          if (id % 2 === 0) await text(client, `${base}/hello`)
          else await text(client, `${base}/record?id=${id}`, { method: 'POST', body: String(id) })
          latencies.push(performance.now() - start)
        } catch (error) {
          if (failures++ < 3) console.log('FAIL', id, error)
        }
      }
    }
    const started = performance.now()
    await Promise.all(Array.from({ length: 20 }, worker))
    const elapsed = performance.now() - started
    const processed = new Map<string, number>()
    for (const backend of backends) for (const [id, count] of backend.processed) processed.set(id, (processed.get(id) ?? 0) + count)
    const stats = client.stats()
    latencies.sort((a, b) => a - b)
    console.log(
      `${next} requests in ${elapsed.toFixed(0)} ms, ${stats.recycles.ok} recycles, ${failures} failed, p99 ${latencies[Math.floor(latencies.length * 0.99)]!.toFixed(1)} ms, retries ${stats.retries}`,
    )
    expect(failures).toBe(0)
    expect(stats.recycles.ok).toBeGreaterThanOrEqual(10)
    expect(events.of('drainpipe:pool:recycle').filter((m) => m.result === 'ok').length).toBe(stats.recycles.ok)
    expect(processed.size).toBe(Math.floor(next / 2))
    expect([...processed.values()].every((count) => count === 1)).toBe(true)
  })

  it('count 1: requests issued across a recycle never wait for the successor handshake', async () => {
    const clock = new ManualClock()
    // The successor's connection (the second) is accepted once 10 requests were served while it waited,
    // so how many fit does not depend on the machine; after 2 s at the latest, should they be stuck behind it.
    let release!: () => void
    const released = new Promise<void>((resolve) => (release = resolve))
    const bound = setTimeout(release, 2000)
    cleanup.push(async () => clearTimeout(bound))
    const [backend] = await startBackends(1, { acceptWhen: (n) => (n === 1 ? Promise.resolve() : released) })
    const { client, base } = await setup([backend!], { maxConnectionAge: 10_000, maxConnectionAgeJitter: 0, clock, keepAlive: false })
    const origin = new URL(base).origin
    await text(client, `${base}/hello`) // pays the first handshake
    const events = record('drainpipe:pool:connect')
    cleanup.push(async () => events.stop())
    const successorUp = events.next('drainpipe:pool:connect')
    clock.advance(9_000)
    await text(client, `${base}/hello`) // the origin is busy, so expiry recycles
    clock.advance(1_000) // age expires: the successor starts connecting (held until released)
    expect(poolStates(client, origin)).toEqual(['recycling', 'connecting'])
    const slowest = { ms: 0 }
    let sent = 0
    let successorReady = false
    void successorUp.then(() => (successorReady = true))
    while (!successorReady) {
      const start = performance.now()
      await text(client, `${base}/hello`)
      slowest.ms = Math.max(slowest.ms, performance.now() - start)
      sent++
      if (sent === 10) release()
    }
    for (let i = 0; i < 20; i++) {
      const start = performance.now()
      await text(client, `${base}/hello`)
      slowest.ms = Math.max(slowest.ms, performance.now() - start)
    }
    console.log(`${sent} requests during the successor's handshake; slowest ${slowest.ms.toFixed(1)} ms`)
    expect(sent).toBeGreaterThan(5)
    expect(slowest.ms).toBeLessThan(150)
    expect(client.stats().recycles.ok).toBe(1)
  })
})

describe('picking a pool', () => {
  it('ties rotate: with nothing in flight, sequential requests go round robin over the pools', async () => {
    const backends = await startBackends(3)
    const { client, base } = await setup(backends, { count: 3 })
    await text(client, `${base}/hello`)
    await until(() => poolStates(client, new URL(base).origin).join() === 'open,open,open', 'three open pools')
    const served = new Map<string, number>()
    const order: string[] = []
    for (let i = 0; i < 30; i++) {
      const backend = String((await text(client, `${base}/hello`)).headers['x-backend'])
      served.set(backend, (served.get(backend) ?? 0) + 1)
      order.push(backend)
    }
    expect([...served.values()]).toEqual([10, 10, 10])
    // Round robin, not merely even: no backend twice in a row.
    expect(order.every((backend, i) => i === 0 || backend !== order[i - 1])).toBe(true)
  })

  it('a lockstep load (batches of 3 over 2 pools) does not lock onto one pool', async () => {
    const backends = await startBackends(2)
    const { client, base } = await setup(backends, { count: 2 })
    const origin = new URL(base).origin
    await text(client, `${base}/hello`)
    await until(() => poolStates(client, origin).join() === 'open,open', 'two open pools')
    const inFlight = () => client.stats().origins[origin]!.pools.reduce((sum, pool) => sum + pool.inFlight, 0)
    const served = new Map<string, number>()
    for (let batch = 0; batch < 40; batch++) {
      const answers = await Promise.all([1, 2, 3].map(() => text(client, `${base}/hello`)))
      for (const { headers } of answers) served.set(String(headers['x-backend']), (served.get(String(headers['x-backend'])) ?? 0) + 1)
      await until(() => inFlight() === 0, 'the batch to close')
    }
    // Each batch puts 2 on one pool and 1 on the other; the pool that got 2 alternates.
    expect([...served.values()]).toEqual([60, 60])
  })

  it('the pool with the fewest requests in flight wins over rotation', async () => {
    let release!: () => void
    const released = new Promise<void>((resolve) => (release = resolve))
    const backends = await startBackends(2, {
      handler: (req, res) => {
        if (req.url !== '/held') return false
        void released.then(() => res.end('held'))
      },
    })
    const { client, base } = await setup(backends, { count: 2 })
    await text(client, `${base}/hello`)
    await until(() => poolStates(client, new URL(base).origin).join() === 'open,open', 'two open pools')
    const held = client.request(`${base}/held`) // one stream stays in flight on one pool
    const served: string[] = []
    const inFlight = () => client.stats().origins[new URL(base).origin]!.pools.reduce((sum, pool) => sum + pool.inFlight, 0)
    for (let i = 0; i < 6; i++) {
      served.push(String((await text(client, `${base}/hello`)).headers['x-backend']))
      await until(() => inFlight() === 1, 'the finished stream to close') // node:http2 closes a stream a tick after its end
    }
    release()
    const heldOn = String((await held).headers['x-backend'])
    expect(new Set(served)).toEqual(new Set([backends.find((backend) => backend.name !== heldOn)!.name]))
  })
})

describe('fresh lookups', () => {
  it("a lookup's temporary failure (EAI_AGAIN) is asked again at once: the first request succeeds", async () => {
    const [backend] = await startBackends(1)
    const { dns, base } = await setup([backend!])
    let failures = 2
    const lookup = dns.lookup
    const flaky: typeof lookup = (hostname, options, callback) => {
      if (failures-- > 0) queueMicrotask(() => callback(Object.assign(new Error(`getaddrinfo EAI_AGAIN ${hostname}`), { code: 'EAI_AGAIN' }), []))
      else lookup(hostname, options, callback)
    }
    const retrying = new Client({ connect: { ca: pki.ca }, lookup: flaky })
    cleanup.push(() => retrying.destroy())
    expect((await text(retrying, `${base}/hello`)).body).toBe('hello')
    expect(failures).toBe(-1)
  })

  it('a lookup that answers "no such name" is not asked again: the request fails with the resolver\'s code', async () => {
    const [backend] = await startBackends(1)
    const { dns, base } = await setup([backend!], {}, { 'other.test': ['127.0.0.2'] })
    const client = new Client({ connect: { ca: pki.ca }, lookup: dns.lookup })
    cleanup.push(() => client.destroy())
    const error = await client.request(`${base}/hello`).catch((e: unknown) => e)
    expect((error as Error).message).toMatch(/ENOTFOUND/)
    expect(dns.calls).toEqual(['api.test'])
  })

  it('calls lookup once per pool start and connects the successor to the new answer', async () => {
    const clock = new ManualClock()
    const backends = await startBackends(2)
    const { client, dns, base } = await setup(backends, { maxConnectionAge: 1000, clock, keepAlive: false }, { 'api.test': ['127.0.0.2'] })
    expect((await text(client, `${base}/hello`)).headers['x-backend']).toBe('127.0.0.2')
    expect(dns.calls).toEqual(['api.test'])
    dns.set('api.test', ['127.0.0.3'])
    const events = record('drainpipe:pool:recycle')
    cleanup.push(async () => events.stop())
    const recycled = events.next('drainpipe:pool:recycle')
    clock.advance(900)
    await text(client, `${base}/hello`)
    clock.advance(200)
    expect((await recycled).result).toBe('ok')
    expect(dns.calls).toEqual(['api.test', 'api.test'])
    expect((await text(client, `${base}/hello`)).headers['x-backend']).toBe('127.0.0.3')
  })

  it('a failed lookup at recycle time keeps the old pool serving and waits the cooldown before trying again', async () => {
    const clock = new ManualClock()
    const [backend] = await startBackends(1)
    const { client, dns, base } = await setup([backend!], { maxConnectionAge: 1000, recycleCooldown: 5000, clock, keepAlive: false })
    await text(client, `${base}/hello`)
    const events = record('drainpipe:pool:recycle')
    cleanup.push(async () => events.stop())
    dns.fail(Object.assign(new Error('getaddrinfo ESERVFAIL api.test'), { code: 'ESERVFAIL' }))
    const failed = events.next('drainpipe:pool:recycle')
    clock.advance(900)
    await text(client, `${base}/hello`)
    clock.advance(200)
    const message = await failed
    expect(message.result).toBe('failed')
    expect(message.reason).toBe('age')
    expect(message.error?.message).toMatch(/ESERVFAIL/)
    expect(dns.calls.length).toBe(2)
    for (let i = 0; i < 20; i++) expect((await text(client, `${base}/hello`)).body).toBe('hello')
    clock.advance(4900)
    expect(dns.calls.length).toBe(2) // still cooling down
    await text(client, `${base}/hello`)
    dns.fail(undefined)
    const ok = events.next('drainpipe:pool:recycle', (m) => m.result === 'ok')
    clock.advance(100)
    await ok
    expect(dns.calls.length).toBe(3)
    expect(client.stats().recycles).toEqual({ ok: 1, failed: 1 })
  })
})

describe('draining', () => {
  it('a response that never ends is cancelled with DrainTimeoutError at the drain deadline; others finish', async () => {
    const clock = new ManualClock()
    const [backend] = await startBackends(1)
    const { client, base } = await setup([backend!], { maxConnectionAge: 1000, drainTimeout: 3000, clock, keepAlive: false })
    const never = await client.request(`${base}/never`)
    const reading = never.body.text()
    const slow = client.request(`${base}/delay?ms=150`).then((r) => r.body.text())
    const events = record('drainpipe:pool:drain', 'drainpipe:pool:close')
    cleanup.push(async () => events.stop())
    const drained = events.next('drainpipe:pool:drain')
    clock.advance(1100)
    await drained
    expect(await slow).toBe('late')
    const closed = events.next('drainpipe:pool:close')
    clock.advance(3000)
    await expect(reading).rejects.toBeInstanceOf(DrainTimeoutError)
    expect((await closed).reason).toBe('drain-deadline')
    expect((await text(client, `${base}/hello`)).body).toBe('hello')
  })

  it('an origin idle for a whole age closes without a successor; the next request connects afresh', async () => {
    const clock = new ManualClock()
    const [backend] = await startBackends(1)
    const { client, dns, base } = await setup([backend!], { maxConnectionAge: 1000, maxConnectionAgeJitter: 0, clock, keepAlive: false })
    const origin = new URL(base).origin
    await text(client, `${base}/hello`)
    await until(() => client.stats().origins[origin]!.pools[0]!.inFlight === 0, 'the stream to close')
    clock.advance(1000)
    await until(() => poolStates(client, origin).length === 0, 'the idle pool to close')
    expect(client.stats().recycles.ok).toBe(0)
    expect(dns.calls.length).toBe(1)
    expect((await text(client, `${base}/hello`)).body).toBe('hello')
    expect(dns.calls.length).toBe(2)
  })
})

describe('server GOAWAY and refused streams', () => {
  /** A server that holds POSTs, then sends GOAWAY with a low last-stream-id and refuses the streams above it. */
  async function goawayServer(host: string, held: number) {
    const pending: { id: number; stream: http2.ServerHttp2Stream; postId: string }[] = []
    let fired = false
    const backend = await startBackend({
      host,
      handler: (req, res) => {
        const postId = new URL(req.url, 'https://x').searchParams.get('id')
        if (postId === null) return false
        if (fired) {
          req.resume()
          req.on('end', () => {
            backend.processed.set(postId, (backend.processed.get(postId) ?? 0) + 1)
            res.end(postId)
          })
          return
        }
        pending.push({ id: req.stream.id!, stream: req.stream, postId })
        if (pending.length === held) {
          fired = true
          const lastStreamId = pending[9]!.id
          req.stream.session!.goaway(http2.constants.NGHTTP2_NO_ERROR, lastStreamId)
          for (const entry of pending) {
            if (entry.id <= lastStreamId) {
              backend.processed.set(entry.postId, (backend.processed.get(entry.postId) ?? 0) + 1)
              entry.stream.respond({ ':status': 200 })
              entry.stream.end(entry.postId)
            } else {
              entry.stream.close(http2.constants.NGHTTP2_REFUSED_STREAM)
            }
          }
        }
      },
    })
    return backend
  }

  it('GOAWAY with a low last-stream-id while 50 POSTs are in flight: all succeed, each processed exactly once', async () => {
    const backend = await goawayServer('127.0.0.2', 50)
    const { client, base } = await setup([backend])
    await text(client, `${base}/hello`)
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) => text(client, `${base}/record?id=p${i}`, { method: 'POST', body: `p${i}` })),
    )
    expect(results.filter((r) => r.status === 'rejected')).toEqual([])
    expect(backend.processed.size).toBe(50)
    expect([...backend.processed.values()].every((count) => count === 1)).toBe(true)
    const stats = client.stats()
    expect(stats.goaways).toBe(1)
    expect(stats.retries).toBe(40)
    expect(backend.connections).toBe(2)
  })

  it('asyncRequest() reports ReadOnlyError for streams above GOAWAY; request() in the same situation succeeds', async () => {
    const backend = await goawayServer('127.0.0.2', 20)
    const { client, base } = await setup([backend])
    await text(client, `${base}/hello`)
    const handles = Array.from({ length: 20 }, (_, i) => client.asyncRequest(`${base}/record?id=a${i}`, { method: 'POST', body: `a${i}` }))
    const outcomes = await Promise.allSettled(handles.map((handle) => handle.done))
    const errors = outcomes.filter((o) => o.status === 'rejected').map((o) => (o as PromiseRejectedResult).reason as Error)
    expect(errors.length).toBe(10)
    expect(errors.every((error) => error instanceof ReadOnlyError && error.unprocessed)).toBe(true)
    expect(backend.processed.size).toBe(10)

    const second = await goawayServer('127.0.0.3', 20)
    const other = await setup([second])
    await text(other.client, `${other.base}/hello`)
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => text(other.client, `${other.base}/record?id=r${i}`, { method: 'POST', body: `r${i}` })),
    )
    expect(results.every((r) => r.status === 'fulfilled')).toBe(true)
    expect(second.processed.size).toBe(20)
  })

  it('REFUSED_STREAM is retried; a server that always refuses fails the call after exactly 4 attempts', async () => {
    let attempts = 0
    let refuseFirst = 2
    const backend = await startBackend({
      host: '127.0.0.2',
      handler: (req, res) => {
        if (req.url.startsWith('/always')) {
          attempts++
          res.stream.close(http2.constants.NGHTTP2_REFUSED_STREAM)
        } else if (refuseFirst-- > 0) {
          res.stream.close(http2.constants.NGHTTP2_REFUSED_STREAM)
        } else {
          return false
        }
      },
    })
    const { client, base } = await setup([backend])
    expect((await text(client, `${base}/hello`, { method: 'POST', body: 'x' })).body).toBe('hello')
    const events = record('drainpipe:request:retry')
    cleanup.push(async () => events.stop())
    const error = await client.request(`${base}/always`, { method: 'POST', body: 'x' }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(RefusedStreamError)
    expect(attempts).toBe(4)
    expect(events.of('drainpipe:request:retry').map((m) => m.attempt)).toEqual([2, 3, 4])
  })

  it('a streamed body refused after it was sent is replayed from its first byte; the source is read once', async () => {
    let attempts = 0
    const backend = await startBackend({
      host: '127.0.0.2',
      handler: (req, res) => {
        if (++attempts === 1) {
          req.once('data', () => res.stream.close(http2.constants.NGHTTP2_REFUSED_STREAM))
          return
        }
        return false // the built-in /echo answers the replay
      },
    })
    const { client, base } = await setup([backend])
    let pulls = 0
    async function* body() {
      for (const part of ['first chunk, ', 'second chunk, ', 'third']) {
        pulls++
        yield part
        await new Promise((resolve) => setImmediate(resolve))
      }
    }
    const res = await client.request(`${base}/echo`, { method: 'POST', body: body() })
    expect(await res.body.text()).toBe('first chunk, second chunk, third')
    expect(attempts).toBe(2)
    expect(pulls).toBe(3)
    expect(client.stats().retries).toBe(1)
  })

  it('a streamed body larger than retryBufferSize is not replayed: the error surfaces marked unprocessed', async () => {
    const backend = await startBackend({
      host: '127.0.0.2',
      handler: (req, res) => {
        let received = 0
        req.on('data', (chunk: Buffer) => {
          received += chunk.length
          if (received >= 2048) res.stream.close(http2.constants.NGHTTP2_REFUSED_STREAM)
        })
      },
    })
    const { client, base } = await setup([backend], { retryBufferSize: 1024 })
    async function* body() {
      for (let i = 0; i < 8; i++) {
        yield Buffer.alloc(512, i)
        await new Promise((resolve) => setImmediate(resolve))
      }
    }
    const error = await client.request(`${base}/`, { method: 'POST', body: body() }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(RefusedStreamError)
    expect((error as RefusedStreamError).unprocessed).toBe(true)
    expect(backend.requests).toBe(1)
  })
})

describe('limits, jitter and shards', () => {
  it('maxRequestsPerConnection 10 over 100 requests: ≥ 10 connections, 0 failures', async () => {
    const [backend] = await startBackends(1)
    const { client, base } = await setup([backend!], { maxRequestsPerConnection: 10 })
    let failures = 0
    for (let i = 0; i < 100; i++) {
      await text(client, `${base}/hello`).catch(() => failures++)
    }
    expect(failures).toBe(0)
    expect(backend!.connections).toBeGreaterThanOrEqual(10)
  })

  it('with an injected random source the age timer fires at exactly age + r × jitter', async () => {
    const clock = new ManualClock()
    const [backend] = await startBackends(1)
    const { client, base } = await setup([backend!], {
      maxConnectionAge: 10_000,
      maxConnectionAgeJitter: 2_000,
      random: () => 0.25,
      clock,
      keepAlive: false,
    })
    await text(client, `${base}/hello`)
    expect(clock.pending()).toEqual([10_500])
    const events = record('drainpipe:pool:connect')
    cleanup.push(async () => events.stop())
    clock.advance(10_499)
    expect(poolStates(client, new URL(base).origin)).toEqual(['open'])
    const successor = events.next('drainpipe:pool:connect')
    await text(client, `${base}/hello`) // the origin is busy, so expiry recycles
    clock.advance(1)
    expect(poolStates(client, new URL(base).origin)).toEqual(['recycling', 'connecting'])
    await successor
  })

  it('count 20 against 4 addresses spreads pools 5/5/5/5 with 0 failures under load', async () => {
    const backends = await startBackends(4)
    const { client, base } = await setup(backends, { count: 20 })
    const results = await Promise.allSettled(Array.from({ length: 400 }, () => text(client, `${base}/hello`)))
    expect(results.filter((r) => r.status === 'rejected')).toEqual([])
    const origin = new URL(base).origin
    await until(() => poolStates(client, origin).every((state) => state === 'open'), 'every shard to connect')
    const perAddress = new Map<string, number>()
    for (const pool of client.stats().origins[new URL(base).origin]!.pools) {
      perAddress.set(pool.address!, (perAddress.get(pool.address!) ?? 0) + 1)
    }
    expect([...perAddress.values()]).toEqual([5, 5, 5, 5])
    expect(backends.map((backend) => backend.connections)).toEqual([5, 5, 5, 5])
  })

  it('stats() reports pools, in-flight, served and the peer limit', async () => {
    const [backend] = await startBackends(1, { settings: { maxConcurrentStreams: 77 } })
    const { client, base } = await setup([backend!], { count: 2 })
    const arrived = once(backend!.server, 'stream')
    const holding = client.request(`${base}/delay?ms=100`)
    await arrived
    await until(() => poolStates(client, new URL(base).origin).join() === 'open,open', 'both shards to connect')
    const stats = client.stats().origins[new URL(base).origin]!
    expect(stats.pools).toHaveLength(2)
    expect(stats.pools.every((pool) => pool.state === 'open' && pool.maxConcurrentStreams === 77 && pool.address === '127.0.0.2')).toBe(true)
    expect(stats.pools.reduce((sum, pool) => sum + pool.inFlight, 0)).toBe(1)
    await (await holding).body.text()
    expect(client.stats().origins[new URL(base).origin]!.pools.reduce((sum, pool) => sum + pool.served, 0)).toBe(1)
  })
})

/**
 * The origin (lib/origin.ts) with a fake engine and a table lookup: routing,
 * the choice of addresses, the HTTP/1.1 switch, demand, closing. No socket.
 */
import { describe, expect, it } from 'vitest'
import { RequestBody } from '../../lib/body.js'
import type { Call } from '../../lib/call.js'
import type { Connection, ConnectionListener, ConnectTarget, Engine, Stream } from '../../lib/engine.js'
import { ClientClosedError, ConnectError, ConnectTimeoutError, ProtocolNegotiationError } from '../../lib/errors.js'
import { Config, type ClientOptions } from '../../lib/options.js'
import { Origin, type Totals } from '../../lib/origin.js'
import { tableLookup } from '../helpers/h2-server.js'
import { ManualClock } from '../helpers/manual-clock.js'

class FakeConnection implements Connection {
  readonly activeStreams = 0
  readonly accepting = true
  readonly lastReceivedAt = 0
  listener: ConnectionListener | undefined
  constructor(
    readonly address: string,
    readonly maxConcurrentStreams: number,
  ) {}
  listen(listener: ConnectionListener): void {
    this.listener = listener
  }
  /** A stream that never answers: the request stays in flight. */
  open(): Stream {
    return { id: 1, write: () => true, end: () => {}, pause: () => {}, resume: () => {}, reset: () => {} }
  }
  ping(): void {}
  close(): void {
    queueMicrotask(() => this.listener?.closed())
  }
  destroy(): void {}
}

interface Attempt {
  target: ConnectTarget
  /** Connects; the server allows `maxConcurrentStreams` streams (0: every request waits). */
  succeed(maxConcurrentStreams?: number): FakeConnection
  fail(error: Error): void
}

function setup(options: ClientOptions = {}, addresses: string[] = ['127.0.0.2', '127.0.0.3', '127.0.0.4']) {
  const clock = new ManualClock()
  const attempts: Attempt[] = []
  const engine: Engine = {
    name: 'fake',
    connect: (target) =>
      new Promise<Connection>((resolve, reject) => {
        attempts.push({
          target,
          succeed: (maxConcurrentStreams = 100) => {
            const connection = new FakeConnection(target.addresses[0]!, maxConcurrentStreams)
            resolve(connection)
            return connection
          },
          fail: reject,
        })
      }),
  }
  const dns = tableLookup({ 'api.test': addresses })
  const totals: Totals = { recyclesOk: 0, recyclesFailed: 0, goaways: 0, pingTimeouts: 0, retries: 0 }
  const config = new Config({ clock, lookup: dns.lookup, keepAlive: false, ...options })
  const name = 'https://api.test:8443'
  const origin = new Origin(name, config.for(name), clock, () => 0, engine, totals)
  return { clock, origin, attempts, dns, totals }
}

/** A call as the origin and a pool see it: a GET without body; it records how it ended. */
function call(): Call & { failed: Error | undefined } {
  const request = { origin: 'https://api.test:8443', method: 'GET', path: '/', headers: {}, authority: undefined, body: RequestBody.empty }
  const fake = { failed: undefined as Error | undefined, request, controller: { paused: false, onResume: undefined } }
  return Object.assign(fake, {
    fail: (error: Error) => (fake.failed = error),
    carriedBy: () => {},
  }) as unknown as Call & { failed: Error | undefined }
}

/** Lets the lookups (microtasks) and engine calls settle. */
const settle = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve()
}

describe('Origin', () => {
  it('a request with no connection wakes every shard: count pools start, on distinct addresses', async () => {
    const t = setup({ count: 3 })
    t.origin.route(call())
    await settle()
    expect(t.attempts.map((a) => a.target.addresses[0]).sort()).toEqual(['127.0.0.2', '127.0.0.3', '127.0.0.4'])
    expect(t.origin.stats().queued).toBe(1)
  })

  it('lookups that answer in the same tick still claim distinct addresses', async () => {
    // tableLookup answers every lookup in a microtask: the three answers land together.
    const t = setup({ count: 3 })
    t.origin.route(call())
    await settle()
    expect(new Set(t.attempts.map((a) => a.target.addresses[0])).size).toBe(3)
  })

  it("each attempt's fallbacks are the lookup's other addresses, fewest connections first", async () => {
    const t = setup({ count: 1 })
    t.origin.route(call())
    await settle()
    expect(t.attempts[0]!.target.addresses).toEqual(['127.0.0.2', '127.0.0.3', '127.0.0.4'])
  })

  it('more shards than addresses: the spread is even (fewest first, ties rotate)', async () => {
    const t = setup({ count: 4 }, ['127.0.0.2', '127.0.0.3'])
    t.origin.route(call())
    await settle()
    const chosen = t.attempts.map((a) => a.target.addresses[0]).sort()
    expect(chosen).toEqual(['127.0.0.2', '127.0.0.2', '127.0.0.3', '127.0.0.3'])
  })

  it('a connection opening flushes the queue to it', async () => {
    const t = setup()
    const waiting = call()
    t.origin.route(waiting)
    await settle()
    const refused = new ConnectError('this fake connection carries no stream')
    const connection = t.attempts[0]!.succeed()
    connection.open = (() => {
      throw refused
    }) as never
    await settle()
    expect(waiting.failed).toBe(refused)
    expect(t.origin.stats().queued).toBe(0)
  })

  it('a connection whose server allows no stream is not usable: the queued calls keep their deadline, and go out once it allows streams', async () => {
    const t = setup({ connectTimeout: 1000 })
    const early = call()
    t.origin.route(early)
    await settle()
    const connection = t.attempts[0]!.succeed(0)
    await settle()
    t.clock.advance(1000)
    expect(early.failed).toBeInstanceOf(ConnectTimeoutError)
    const late = call()
    t.origin.route(late)
    ;(connection as { maxConcurrentStreams: number }).maxConcurrentStreams = 10
    connection.listener!.settings()
    await settle()
    t.clock.advance(5000)
    expect(late.failed).toBeUndefined()
    expect(t.origin.stats().queued).toBe(0)
  })

  it('the first connect fails and nothing else is trying: the queued calls get that error at once', async () => {
    const t = setup()
    const waiting = call()
    t.origin.route(waiting)
    await settle()
    const refused = new ConnectError('refused')
    t.attempts[0]!.fail(refused)
    await settle()
    expect(waiting.failed).toBe(refused)
    // The shard backs off; with nothing waiting when that is over, it connects no more.
    expect(t.clock.pending()).toHaveLength(1)
    t.clock.advance(t.clock.pending()[0]!)
    await settle()
    expect(t.attempts).toHaveLength(1)
  })

  it('a connect that negotiates HTTP/1.1 switches the origin over, queued calls included', async () => {
    const t = setup()
    t.origin.route(call())
    await settle()
    t.attempts[0]!.fail(new ProtocolNegotiationError('https://api.test:8443', 'http/1.1'))
    await settle()
    expect(t.origin.stats().protocol).toBe('http/1.1')
    await t.origin.destroy(null)
  })

  it('an address that left DNS recycles its connection at the next lookup, long before its age', async () => {
    // Ages 1000 and 1090 (random 0, then 0.9 of a 100 ms jitter).
    const draws = [0, 0.9]
    const t = setup({ count: 2, maxConnectionAge: 1000, maxConnectionAgeJitter: 100 }, ['127.0.0.2', '127.0.0.3'])
    ;(t.origin as { random: () => number }).random = () => draws.shift() ?? 0
    t.origin.route(call())
    await settle()
    for (const attempt of t.attempts) attempt.succeed()
    await settle()
    t.dns.set('api.test', ['127.0.0.2', '127.0.0.4'])
    t.origin.route(call()) // in flight: the origin is busy, so an age expiry recycles
    t.clock.advance(1000) // the first age: its successor's lookup no longer lists 127.0.0.3
    await settle()
    const successors = t.attempts.slice(2).map((a) => a.target.addresses[0]).sort()
    expect(successors).toEqual(['127.0.0.2', '127.0.0.4'])
    expect(t.origin.stats().pools.filter((p) => p.state === 'recycling')).toHaveLength(2)
    await t.origin.destroy(null)
  })

  it('demand: calls waiting or in flight; idle: none for a whole age', async () => {
    const t = setup({ maxConnectionAge: 1000 })
    expect(t.origin.hasDemand()).toBe(false)
    t.origin.route(call())
    expect(t.origin.hasDemand()).toBe(true)
    await t.origin.destroy(null)
    expect(t.origin.hasDemand()).toBe(false)
    t.clock.advance(999)
    expect(t.origin.isIdle()).toBe(false)
    t.clock.advance(1)
    expect(t.origin.isIdle()).toBe(true)
  })

  it('close() while the only connection attempt fails: the queued call fails at once, close settles, no timer is left', async () => {
    const t = setup({ connectTimeout: 500 })
    const waiting = call()
    t.origin.route(waiting)
    await settle()
    const closed = t.origin.close()
    t.attempts[0]!.fail(new ConnectError('refused'))
    await closed
    expect(waiting.failed).toBeInstanceOf(ConnectError)
    expect(t.clock.pending()).toEqual([])
  })

  it('close() during a reconnect backoff with a call queued: the call fails with ClientClosedError, no timer is left', async () => {
    const t = setup()
    const queued = call()
    t.origin.route(queued)
    await settle()
    // The server allows no stream: the call stays queued; then the connection is lost before it served.
    const connection = t.attempts[0]!.succeed(0)
    await settle()
    connection.listener!.error(new Error('reset'))
    await settle()
    expect(t.clock.pending()).toEqual([0, 10_000]) // the backoff (random 0), and the call's connect deadline
    await t.origin.close()
    expect(queued.failed).toBeInstanceOf(ClientClosedError)
    expect(t.clock.pending()).toEqual([])
  })
})

/**
 * The origin (lib/origin.ts) with a fake engine and a table lookup: routing,
 * the choice of addresses, the HTTP/1.1 switch, demand, closing. No socket.
 */
import { describe, expect, it } from 'vitest'
import { RequestBody } from '../../lib/body.js'
import type { Call } from '../../lib/call.js'
import type { Connection, ConnectionListener, ConnectTarget, Engine, Stream, StreamHandler } from '../../lib/engine.js'
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
  /** The handlers of the streams opened, to answer them. */
  readonly streams: StreamHandler[] = []
  constructor(
    readonly address: string,
    readonly maxConcurrentStreams: number,
  ) {}
  listen(listener: ConnectionListener): void {
    this.listener = listener
  }
  /** A stream that answers when the test says so (`streams`): until then the request stays in flight. */
  open(_head: unknown, _endStream: boolean, handler: StreamHandler): Stream {
    this.streams.push(handler)
    return { id: 1, write: () => true, end: () => {}, pause: () => {}, resume: () => {}, reset: () => {} }
  }
  /** Answers every open stream with `status`. */
  answerAll(status: number): void {
    for (const handler of this.streams.splice(0)) {
      handler.response(status, {})
      handler.end({})
    }
  }
  ping(): void {}
  close(): void {
    queueMicrotask(() => this.listener?.closed())
  }
  destroy(): void {}
}

interface Attempt {
  target: ConnectTarget
  /** Connects (to `address`, a fallback, if given); the server allows `maxConcurrentStreams` streams (0: every request waits). */
  succeed(maxConcurrentStreams?: number, address?: string): FakeConnection
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
          succeed: (maxConcurrentStreams = 100, address = target.addresses[0]!) => {
            const connection = new FakeConnection(address, maxConcurrentStreams)
            resolve(connection)
            return connection
          },
          fail: reject,
        })
      }),
  }
  const dns = tableLookup({ 'api.test': addresses })
  const totals: Totals = { recyclesOk: 0, recyclesFailed: 0, goaways: 0, pingTimeouts: 0, retries: 0, ejections: 0 }
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
    responseStarted: () => {},
    complete: () => {},
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

describe('Origin: outlier detection', () => {
  /** Two addresses, a connection on each, every request answered. */
  async function twoServing(options: ClientOptions = {}) {
    const t = setup({ count: 2, outlierDetection: { baseEjectionTime: 1000 }, slowStart: false, ...options }, ['127.0.0.2', '127.0.0.3'])
    t.origin.route(call())
    await settle()
    const connections = t.attempts.map((attempt) => attempt.succeed())
    await settle()
    const on = (address: string) => connections.find((connection) => connection.address === address)!
    return { ...t, connections, on }
  }

  it('five server errors in a row on an address eject it: its connection is replaced on the other address, then drains', async () => {
    const t = await twoServing()
    t.on('127.0.0.2').answerAll(200)
    t.on('127.0.0.3').answerAll(200)
    for (let i = 0; i < 10; i++) t.origin.route(call())
    t.on('127.0.0.2').answerAll(503)
    t.on('127.0.0.3').answerAll(200)
    await settle()
    expect(t.origin.stats().addresses['127.0.0.2']).toMatchObject({ state: 'ejected', ejections: 1 })
    expect(t.totals.ejections).toBe(1)
    // The successor goes to the healthy address; the ejected one is only the last fallback.
    expect(t.attempts[2]!.target.addresses).toEqual(['127.0.0.3', '127.0.0.2'])
    t.attempts[2]!.succeed()
    await settle()
    const states = t.origin.stats().pools.map((pool) => `${pool.address} ${pool.state}`)
    expect(states.filter((state) => state.startsWith('127.0.0.2'))).toEqual([])
    await t.origin.destroy(null)
  })

  it('back after its time: a connection moves to it from the most crowded address', async () => {
    const t = await twoServing()
    for (let i = 0; i < 10; i++) t.origin.route(call())
    t.on('127.0.0.2').answerAll(503)
    await settle()
    t.attempts[2]!.succeed()
    await settle()
    expect(t.origin.stats().pools.map((pool) => pool.address)).toEqual(['127.0.0.3', '127.0.0.3'])
    t.clock.advance(1000)
    await settle()
    expect(t.attempts).toHaveLength(4)
    expect(t.attempts[3]!.target.addresses[0]).toBe('127.0.0.2')
    expect(t.origin.stats().pools.filter((pool) => pool.state === 'recycling')).toHaveLength(1)
    await t.origin.destroy(null)
  })

  it('a connection that chose the address before its ejection moves on as soon as it is up', async () => {
    // Three shards over two addresses: the first and the third choose 127.0.0.2.
    const t = setup({ count: 3, outlierDetection: { consecutiveFailures: 1, baseEjectionTime: 1000 }, slowStart: false }, ['127.0.0.2', '127.0.0.3'])
    t.origin.route(call())
    await settle()
    expect(t.attempts.map((attempt) => attempt.target.addresses[0])).toEqual(['127.0.0.2', '127.0.0.3', '127.0.0.2'])
    const first = t.attempts[0]!.succeed()
    t.attempts[1]!.succeed()
    await settle()
    // The queued call went to the first connection: it is lost, and that ejects 127.0.0.2 (consecutiveFailures 1).
    first.streams[0]!.closed({ code: undefined, by: undefined, error: undefined, lost: new Error('lost'), unprocessed: false })
    expect(t.origin.stats().addresses['127.0.0.2']!.state).toBe('ejected')
    await settle()
    expect(t.attempts).toHaveLength(4) // the first connection's successor
    t.attempts[2]!.succeed()
    await settle()
    expect(t.attempts).toHaveLength(5)
    expect(t.attempts[4]!.target.addresses[0]).toBe('127.0.0.3')
    const third = t.origin.stats().pools.find((pool) => pool.address === '127.0.0.2' && pool.state === 'recycling')
    expect(third).toBeDefined()
    await t.origin.destroy(null)
  })

  it('a connect failure counts for the address tried first; a connection through a fallback too', async () => {
    const t = setup({ count: 1 }, ['127.0.0.2', '127.0.0.3'])
    t.origin.route(call())
    await settle()
    const first = t.attempts[0]!.target.addresses
    t.attempts[0]!.succeed(100, first[1])
    await settle()
    expect(t.origin.stats().addresses[first[0]!]!.consecutiveFailures).toBe(1)
    expect(t.origin.stats().addresses[first[1]!]!.consecutiveFailures).toBe(0)
    await t.origin.destroy(null)
  })

  it('outcomes of an IP-literal origin are not tracked (one address: nothing to eject)', async () => {
    const clock = new ManualClock()
    const attempts: FakeConnection[] = []
    const engine: Engine = {
      name: 'fake',
      connect: async (target) => {
        const connection = new FakeConnection(target.addresses[0]!, 100)
        attempts.push(connection)
        return connection
      },
    }
    const totals: Totals = { recyclesOk: 0, recyclesFailed: 0, goaways: 0, pingTimeouts: 0, retries: 0, ejections: 0 }
    const name = 'https://127.0.0.9:8443'
    const origin = new Origin(name, new Config({ clock, keepAlive: false }).for(name), clock, () => 0, engine, totals)
    for (let i = 0; i < 10; i++) origin.route(call())
    await settle()
    attempts[0]!.answerAll(503)
    expect(origin.stats().addresses).toEqual({})
    expect(totals.ejections).toBe(0)
    await origin.destroy(null)
  })
})

/**
 * The pool's transition table, every state × every event, with no socket:
 * a fake connection behind the engine seam and a fake owner record what the
 * pool does.
 */
import { describe, expect, it } from 'vitest'
import type { Connection, ConnectionListener, Engine, Goaway } from '../../lib/engine.js'
import { Config } from '../../lib/options.js'
import { Pool, type PoolEvent, type PoolOwner, type PoolState, type PoolStateName } from '../../lib/pool.js'
import { ManualClock } from '../helpers/manual-clock.js'

class FakeConnection implements Connection {
  readonly address = '127.0.0.2'
  readonly maxConcurrentStreams = 100
  readonly activeStreams = 0
  accepting = true
  lastReceivedAt = 0
  listener: ConnectionListener | undefined
  closes = 0
  destroyed: (Error | undefined)[] = []
  listen(listener: ConnectionListener): void {
    this.listener = listener
  }
  open(): never {
    throw new Error('no streams in a unit test')
  }
  ping(): void {}
  close(): void {
    this.closes++
  }
  destroy(error?: Error): void {
    this.destroyed.push(error)
  }
}

function setup(options: ConstructorParameters<typeof Config>[0] = {}) {
  const clock = new ManualClock()
  const config = new Config({ clock, keepAlive: false, drainTimeout: 1000, ...options })
  const transitions: { from: PoolStateName; to: PoolStateName; event: PoolEvent['type'] }[] = []
  const engine: Engine = { name: 'fake', connect: () => new Promise(() => {}) }
  const owner: PoolOwner = {
    addresses: async () => ['127.0.0.2'],
    transitioned: (pool, from: PoolState, event) => transitions.push({ from: from.name, to: pool.state.name, event: event.type }),
    slotFreed: () => {},
    completed: () => {},
    goaway: () => {},
    limitReached: () => {},
  }
  const context = {
    origin: 'https://api.test:8443',
    url: new URL('https://api.test:8443'),
    options: config.for('https://api.test:8443'),
    clock,
    engine,
    settings: { streamWindow: 1 << 20, connectionWindow: 4 << 20, maxHeaderListSize: 65536, maxHeaderFields: 128 },
    pingInterval: () => 0,
  }
  const pool = new Pool(context, 0, owner)
  const connection = new FakeConnection()
  return { clock, pool, connection, transitions }
}

type Setup = ReturnType<typeof setup>

const goaway: Goaway = { errorCode: 0, lastStreamId: 0, debug: Buffer.alloc(0) }

function reach(state: PoolStateName, t: Setup): void {
  if (state === 'connecting') return
  t.pool.transition({ type: 'connected', connection: t.connection })
  if (state === 'draining') t.pool.transition({ type: 'drain-requested', reason: 'successor-ready' })
  if (state === 'closed') t.pool.transition({ type: 'destroy-requested', error: new Error('gone') })
}

const events: [string, (t: Setup) => PoolEvent][] = [
  ['connected', () => ({ type: 'connected', connection: new FakeConnection() })],
  ['connect-failed', () => ({ type: 'connect-failed', error: new Error('refused') })],
  ['drain-requested', () => ({ type: 'drain-requested', reason: 'successor-ready' })],
  ['idle-timeout', () => ({ type: 'idle-timeout' })],
  ['goaway-received', () => ({ type: 'goaway-received', goaway })],
  ['ping-timeout', () => ({ type: 'ping-timeout', error: new Error('no ACK') })],
  ['connection-failed', () => ({ type: 'connection-failed', error: new Error('reset') })],
  ['connection-closed', () => ({ type: 'connection-closed' })],
  ['drain-deadline', () => ({ type: 'drain-deadline' })],
  ['destroy-requested', () => ({ type: 'destroy-requested', error: new Error('destroyed') })],
]

const states: PoolStateName[] = ['connecting', 'open', 'draining', 'closed']

/** state → event → [next state, close reason when closed]; `=` unchanged. */
const table: Record<PoolStateName, Record<string, [PoolStateName | '=', string?]>> = {
  connecting: {
    connected: ['open'], 'connect-failed': ['closed', 'connect-failed'], 'drain-requested': ['closed', 'client-closed'],
    'idle-timeout': ['='], 'goaway-received': ['='], 'ping-timeout': ['='], 'connection-failed': ['='], 'connection-closed': ['='],
    'drain-deadline': ['='], 'destroy-requested': ['closed', 'destroyed'],
  },
  open: {
    connected: ['='], 'connect-failed': ['='], 'drain-requested': ['draining'], 'idle-timeout': ['draining'], 'goaway-received': ['draining'],
    'ping-timeout': ['closed', 'ping-timeout'], 'connection-failed': ['closed', 'connection-lost'], 'connection-closed': ['closed', 'connection-lost'],
    'drain-deadline': ['='], 'destroy-requested': ['closed', 'destroyed'],
  },
  draining: {
    connected: ['='], 'connect-failed': ['='], 'drain-requested': ['='], 'idle-timeout': ['='], 'goaway-received': ['='],
    'ping-timeout': ['closed', 'ping-timeout'], 'connection-failed': ['closed', 'connection-lost'], 'connection-closed': ['closed', 'successor-ready'],
    'drain-deadline': ['closed', 'drain-deadline'], 'destroy-requested': ['closed', 'destroyed'],
  },
  closed: {
    connected: ['='], 'connect-failed': ['='], 'drain-requested': ['='], 'idle-timeout': ['='], 'goaway-received': ['='], 'ping-timeout': ['='],
    'connection-failed': ['='], 'connection-closed': ['='], 'drain-deadline': ['='], 'destroy-requested': ['='],
  },
}

describe('Pool: every state × every event', () => {
  for (const state of states) {
    for (const [name, event] of events) {
      const [next, reason] = table[state][name]!
      it(`${state} + ${name} → ${next === '=' ? state : next}${reason ? ` (${reason})` : ''}`, () => {
        const t = setup()
        reach(state, t)
        const before = t.transitions.length
        t.pool.transition(event(t))
        const to = next === '=' ? state : next
        expect(t.pool.state.name).toBe(to)
        if (reason) expect(t.pool.state).toMatchObject({ name: 'closed', reason })
        // The owner hears of every change, and only of changes.
        expect(t.transitions.length - before).toBe(next === '=' ? 0 : 1)
      })
    }
  }
})

describe('Pool: what each transition does', () => {
  it('nothing connects in the constructor', () => {
    const t = setup()
    expect(t.pool.state.name).toBe('connecting')
    expect(t.clock.pending()).toEqual([])
  })

  it('connect() arms the connect deadline once', () => {
    const t = setup({ connectTimeout: 500 })
    t.pool.connect()
    t.pool.connect()
    expect(t.clock.pending()).toEqual([500])
  })

  it('opening listens to the connection and registers its address', () => {
    const t = setup()
    reach('open', t)
    expect(t.connection.listener).toBeDefined()
    expect(t.pool.address).toBe('127.0.0.2')
    expect(t.pool.hasCapacity).toBe(true)
  })

  it('a connection that came up after the pool gave up on it is destroyed', () => {
    const t = setup()
    t.pool.transition({ type: 'drain-requested', reason: 'close-requested' })
    const late = new FakeConnection()
    t.pool.transition({ type: 'connected', connection: late })
    expect(late.destroyed).toHaveLength(1)
  })

  it('draining with no streams closes the connection gracefully at once, and arms the drain deadline', () => {
    const t = setup({ drainTimeout: 1000 })
    reach('draining', t)
    expect(t.connection.closes).toBe(1)
    expect(t.clock.pending()).toEqual([1000])
    expect(t.pool.hasCapacity).toBe(false)
  })

  it('the drain deadline closes a pool that is still draining', () => {
    const t = setup({ drainTimeout: 1000 })
    reach('draining', t)
    t.clock.advance(1000)
    expect(t.pool.state).toMatchObject({ name: 'closed', reason: 'drain-deadline' })
    expect(t.connection.destroyed).toHaveLength(1)
  })

  it('a GOAWAY reported by the connection drains the pool; a draining pool still hears later ones', () => {
    const t = setup()
    reach('open', t)
    t.connection.listener!.goaway(goaway)
    expect(t.pool.state).toMatchObject({ name: 'draining', reason: 'goaway' })
    t.connection.listener!.goaway({ ...goaway, errorCode: 2 })
    expect(t.pool.state.name).toBe('draining')
  })

  it('a connection error closes the pool as lost, with the error', () => {
    const t = setup()
    reach('open', t)
    const error = new Error('protocol violation')
    t.connection.listener!.error(error)
    expect(t.pool.state).toMatchObject({ name: 'closed', reason: 'connection-lost', error })
    expect(t.connection.destroyed).toEqual([error])
  })

  it('an idle timeout drains a pool with no streams', () => {
    const t = setup({ idleTimeout: 300 })
    reach('open', t)
    expect(t.clock.pending()).toEqual([300])
    t.clock.advance(300)
    expect(t.pool.state).toMatchObject({ name: 'draining', reason: 'idle-timeout' })
  })

  it('closing leaves no timer (idle, drain deadline)', () => {
    const t = setup({ idleTimeout: 300, drainTimeout: 1000 })
    reach('draining', t)
    t.pool.transition({ type: 'destroy-requested', error: new Error('gone') })
    expect(t.clock.pending()).toEqual([])
  })

  it('a pool with no connection refuses a request before a byte is written', () => {
    const t = setup()
    const failed: Error[] = []
    t.pool.run({ fail: (error: Error) => failed.push(error) } as never)
    expect(failed[0]).toMatchObject({ code: 'DRAINPIPE_READ_ONLY', unprocessed: true })
  })
})

import { isIP } from 'node:net'
import { Backoff } from './backoff.js'
import type { Call } from './call.js'
import { publish } from './channels.js'
import type { Clock } from './clock.js'
import { hostOf } from './dial.js'
import { type Engine, Http2ErrorCode, type Goaway, type LocalSettings } from './engine.js'
import { ClientClosedError, ConnectError, ProtocolNegotiationError, QueueFullError } from './errors.js'
import type { Exchange } from './exchange.js'
import { Health, Outcome } from './health.js'
import { Http1Fallback } from './http1.js'
import { lookupAll } from './lookup.js'
import type { ResolvedOptions } from './options.js'
import { Placement } from './placement.js'
import { type OriginContext, Pool, type PoolEvent, type PoolOwner, type PoolState } from './pool.js'
import { WaitQueue } from './queue.js'
import { Registry } from './registry.js'
import { type RecycleReason, Shard, type ShardOwner } from './shard.js'
import type { OriginStats } from './stats.js'

/** Counts kept across origins for `client.stats()`. */
export interface Totals {
  recyclesOk: number
  recyclesFailed: number
  goaways: number
  pingTimeouts: number
  retries: number
  ejections: number
}

/** Flow-control windows we grant: 1 MiB a stream, 4 MiB the connection (64 KiB, the RFC default, makes downloads wait on round trips). */
const STREAM_WINDOW = 1 << 20
const CONNECTION_WINDOW = 4 << 20

/**
 * Everything one origin needs: its queue, the pick among its registered
 * pools, the HTTP/1.1 switch, the choice of addresses (`placement.ts`), the
 * health of those addresses (`health.ts`), and its `count` shards, which
 * own the successive connections (`shard.ts`). Pools report here; the
 * origin keeps the registry and the queue right and tells the pool's shard
 * what happened.
 */
export class Origin implements OriginContext, PoolOwner, ShardOwner {
  readonly origin: string
  readonly url: URL
  readonly options: ResolvedOptions
  readonly clock: Clock
  readonly random: () => number
  readonly engine: Engine
  readonly settings: LocalSettings
  readonly #totals: Totals
  readonly #shards: Shard[]
  /** Every pool not yet closed, draining ones included. */
  readonly #pools = new Set<Pool>()
  readonly #registry = new Registry()
  /** Each address's failures, ejection and slow start: the weights of the pick. */
  readonly #health: Health
  readonly #queue: WaitQueue
  readonly #requestsByAddress = new Map<string, number>()
  /** Where connections go: the address choice, and the moves when addresses leave, are ejected or come back. */
  readonly #placement: Placement
  #http1: Http1Fallback | undefined
  #lastRequestAt: number
  #pingFactor = 1
  /** The origin has had an open connection: a later connect failure makes requests wait for a reconnect, not fail. */
  #everOpen = false
  #closing: 'graceful' | 'destroy' | undefined
  #settled: (() => void) | undefined

  constructor(origin: string, options: ResolvedOptions, clock: Clock, random: () => number, engine: Engine, totals: Totals) {
    this.origin = origin
    this.url = new URL(origin)
    this.options = options
    this.clock = clock
    this.random = random
    this.engine = engine
    this.#totals = totals
    this.settings = {
      streamWindow: STREAM_WINDOW,
      connectionWindow: CONNECTION_WINDOW,
      maxHeaderListSize: options.maxHeaderSize,
      maxHeaderFields: options.maxHeaderFields,
    }
    this.#lastRequestAt = clock.now()
    this.#queue = new WaitQueue(origin, clock, options.connectTimeout, () => this.#queueChanged())
    const { base, max } = options.reconnectBackoff
    this.#shards = Array.from({ length: options.count }, (_, index) => new Shard(index, this, new Backoff(base, max, random)))
    this.#health = new Health(origin, options, clock, totals, {
      ejected: (health) => this.#placement.ejected(health),
      returned: (health) => this.#placement.returned(health),
    })
    this.#placement = new Placement(this.#shards, this.#pools, this.#health)
    // Plain http:// without h2c is HTTP/1.1 from the start; https:// finds out through ALPN.
    if (origin.startsWith('http:') && !options.h2c) this.#http1 = new Http1Fallback(origin, options, clock)
  }

  // ── Routing ────────────────────────────────────────────────────────────

  /** Sends a call to the least busy registered pool, or queues it until one has a free slot. */
  route(call: Call): void {
    this.#lastRequestAt = this.clock.now()
    if (this.#http1) {
      this.#http1.run(call)
      return
    }
    const pool = this.#registry.pick()
    if (pool !== undefined) {
      this.#run(pool, call)
      // A shard left idle (its connection went away with nothing waiting) comes back with the traffic.
      this.#wake()
      return
    }
    if (this.#closing && this.#pools.size === 0) {
      call.fail(new ClientClosedError())
      return
    }
    if (this.#queue.length >= this.options.maxQueue) {
      call.fail(new QueueFullError(this.origin, this.options.maxQueue))
      return
    }
    // Woken first: a connect attempt's deadline then comes before the waiting call's, and the
    // call fails with what happened to the attempt rather than with its own wait.
    this.#wake()
    this.#queue.push(call)
  }

  /** Shards without a connection start one: requests come. */
  #wake(): void {
    if (this.#closing) return
    for (const shard of this.#shards) if (shard.state.name === 'idle') shard.transition({ type: 'demand' })
  }

  #run(pool: Pool, call: Call): void {
    const address = pool.address ?? ''
    this.#requestsByAddress.set(address, (this.#requestsByAddress.get(address) ?? 0) + 1)
    pool.run(call)
  }

  /** Hands queued calls to pools with free slots, oldest first: after every change of capacity. */
  #flush(): void {
    while (this.#queue.length > 0) {
      const pool = this.#registry.pick()
      if (pool === undefined) break
      this.#run(pool, this.#queue.shift()!)
    }
    this.#queueChanged()
  }

  #queueChanged(): void {
    if (!this.#closing) return
    if (this.#queue.length === 0) for (const shard of this.#shards) shard.transition({ type: 'finished' })
    // Closing with requests queued and no connection left that could serve them: they fail now, not later.
    else if (this.#pools.size === 0) this.#failQueue(new ClientClosedError('The client closed before a connection could serve the request'))
    this.#checkSettled()
  }

  #failQueue(error: Error): void {
    for (const call of this.#queue.takeAll()) call.fail(error)
  }

  // ── What pools report (PoolOwner) ──────────────────────────────────────

  /**
   * A fresh lookup for every connection; the address with the fewest of this
   * origin's connections first, the others as fallbacks (`placement.ts`).
   */
  async addresses(pool: Pool, signal: AbortSignal): Promise<string[]> {
    const host = hostOf(this.url)
    if (isIP(host)) return [host]
    const addresses = await lookupAll(this.options.lookup, host, signal)
    this.#health.update(addresses)
    this.#placement.removed(addresses)
    return this.#placement.choose(pool, addresses)
  }

  transitioned(pool: Pool, from: PoolState, event: PoolEvent): void {
    const shard = this.#shards[pool.shard]!
    const to = pool.state
    switch (to.name) {
      case 'open': {
        this.#everOpen = true
        const address = pool.address!
        const health = this.#health.get(address)
        const claim = this.#placement.claim(pool)
        this.#registry.register(pool, health)
        this.#usableChanged()
        // Connected through a fallback: the first choice did not answer in time.
        if (claim !== undefined && claim !== address) this.#health.record(claim, Outcome.Failure)
        shard.transition({ type: 'connected', pool })
        // It chose the address before the address was ejected: it moves on at once.
        if (health?.avoided && claim === address && shard.pool === pool) shard.transition({ type: 'recycle-due', reason: 'address-ejected' })
        this.#flush()
        return
      }
      case 'draining':
        this.#deregister(pool)
        if (to.reason === 'goaway' || to.reason === 'idle-timeout') shard.transition({ type: 'retired', pool, reason: to.reason })
        return
      case 'closed':
        this.#deregister(pool)
        this.#pools.delete(pool)
        if (from.name === 'connecting' && to.reason === 'connect-failed') this.#connectFailed(shard, pool, to.error)
        else if (from.name === 'open' && to.reason !== 'destroyed') {
          if (event.type === 'ping-timeout') this.#totals.pingTimeouts++
          shard.transition({ type: 'lost', pool })
        }
        this.#queueChanged()
        this.#checkSettled()
        return
      default:
        return
    }
  }

  #deregister(pool: Pool): void {
    this.#registry.deregister(pool)
    this.#usableChanged()
  }

  /**
   * Queued calls wait for a connection (with connectTimeout as deadline)
   * while no registered connection allows a stream: a server that keeps
   * SETTINGS_MAX_CONCURRENT_STREAMS at 0 must not hold them forever.
   */
  #usableChanged(): void {
    this.#queue.connectionUsable(this.#registry.allowsStreams)
  }

  #connectFailed(shard: Shard, pool: Pool, error: Error | undefined): void {
    const reason = error ?? new ConnectError(`Could not connect to ${this.origin}`)
    if (reason instanceof ProtocolNegotiationError && reason.protocol === 'http/1.1') {
      this.#switchToHttp1()
      return
    }
    // A connect failure counts for the address the pool tried first.
    const claim = this.#placement.claim(pool)
    if (claim !== undefined) this.#health.record(claim, Outcome.Failure)
    const connecting = [...this.#pools].some((other) => other.state.name === 'connecting')
    // Nothing ever answered and nothing else is trying: report at once, as undici would.
    if (!this.#everOpen && this.#registry.size === 0 && !connecting) this.#failQueue(reason)
    shard.transition({ type: 'connect-failed', pool, error: reason })
  }

  /** The origin now speaks only HTTP/1.1 (ALPN says so): undici's Pool serves it, queued requests included; h2 connections drain. */
  #switchToHttp1(): void {
    if (this.#http1) return
    const http1 = new Http1Fallback(this.origin, this.options, this.clock)
    this.#http1 = http1
    for (const shard of this.#shards) {
      shard.transition({ type: 'closing' })
      shard.transition({ type: 'finished' })
    }
    for (const call of this.#queue.takeAll()) http1.run(call)
  }

  slotFreed(): void {
    // Also what a server's SETTINGS report: the streams it allows may have gone to 0 or come back.
    this.#usableChanged()
    this.#flush()
  }

  /** One call per exchange: what it tells of its address. */
  completed(pool: Pool, exchange: Exchange): void {
    this.#health.record(pool.address!, exchange.outcome)
  }

  goaway(pool: Pool, goaway: Goaway): void {
    this.#totals.goaways++
    if (goaway.errorCode === Http2ErrorCode.ENHANCE_YOUR_CALM && goaway.debug.toString('latin1').includes('too_many_pings')) {
      this.#pingFactor *= 2
      const interval = this.pingInterval()
      publish('drainpipe:pool:ping-backoff', () => ({ ...pool.info(), interval }))
    }
  }

  limitReached(pool: Pool): void {
    const shard = this.#shards[pool.shard]!
    if (shard.state.name === 'serving' && shard.state.pool === pool) shard.transition({ type: 'recycle-due', reason: 'requests' })
  }

  pingInterval(): number {
    const { keepAlive } = this.options
    return keepAlive ? keepAlive.interval * this.#pingFactor : 0
  }

  // ── What shards ask (ShardOwner) ───────────────────────────────────────

  get maxConnectionAge(): number {
    return this.options.maxConnectionAge
  }

  get maxConnectionAgeJitter(): number {
    return this.options.maxConnectionAgeJitter
  }

  get recycleCooldown(): number {
    return this.options.recycleCooldown
  }

  startPool(shard: Shard, successorOf?: Pool): Pool {
    const pool = new Pool(this, shard.index, this, successorOf?.id)
    this.#pools.add(pool)
    pool.connect()
    return pool
  }

  hasDemand(): boolean {
    if (this.#queue.length > 0) return true
    for (const pool of this.#pools) if (pool.inFlight > 0) return true
    return false
  }

  isIdle(): boolean {
    const age = this.options.maxConnectionAge
    return age > 0 && this.clock.now() - this.#lastRequestAt >= age && !this.hasDemand()
  }

  recycled(pool: Pool, reason: RecycleReason, outcome: { successor: Pool } | { error: Error }): void {
    if ('successor' in outcome) {
      this.#totals.recyclesOk++
      publish('drainpipe:pool:recycle', () => ({ ...pool.info(), result: 'ok', reason, successor: outcome.successor.id }))
    } else {
      this.#totals.recyclesFailed++
      publish('drainpipe:pool:recycle', () => ({ ...pool.info(), result: 'failed', reason, error: outcome.error }))
    }
  }

  // ── Closing ────────────────────────────────────────────────────────────

  /** Graceful: queued and in-flight requests finish where a connection can carry them; then every connection closes. */
  close(): Promise<void> {
    const settled = this.#whenSettled()
    if (!this.#closing) {
      this.#closing = 'graceful'
      this.#health.close()
      for (const shard of this.#shards) shard.transition({ type: 'closing' })
      this.#queueChanged()
    }
    return Promise.all([settled, this.#http1?.close()]).then(() => {})
  }

  /** At once: queued requests fail unprocessed, streams in flight fail with `error`. */
  destroy(error: Error | null): Promise<void> {
    const settled = this.#whenSettled()
    this.#closing = 'destroy'
    this.#health.close()
    this.#failQueue(new ClientClosedError('The client was destroyed', { cause: error ?? undefined }))
    for (const shard of this.#shards) shard.transition({ type: 'destroyed' })
    const reason = error ?? new ClientClosedError('The client was destroyed', { unprocessed: false })
    for (const pool of [...this.#pools]) pool.transition({ type: 'destroy-requested', error: reason })
    this.#checkSettled()
    return Promise.all([settled, this.#http1?.destroy(error)]).then(() => {})
  }

  #whenSettled(): Promise<void> {
    return new Promise((resolve) => {
      const previous = this.#settled
      this.#settled = () => {
        previous?.()
        resolve()
      }
      this.#checkSettled()
    })
  }

  #checkSettled(): void {
    if (!this.#closing || this.#pools.size > 0 || this.#queue.length > 0) return
    const settled = this.#settled
    this.#settled = undefined
    settled?.()
  }

  // ── Observability ──────────────────────────────────────────────────────

  stats(): OriginStats {
    const replacing = new Set(this.#shards.map((shard) => shard.replacing))
    return {
      protocol: this.#http1 ? 'http/1.1' : 'h2',
      pools: [...this.#pools].map((pool) => ({
        id: pool.id,
        shard: pool.shard,
        address: pool.address,
        state: replacing.has(pool) ? 'recycling' : pool.state.name,
        age: Math.round(pool.age),
        inFlight: pool.inFlight,
        served: pool.served,
        maxConcurrentStreams: pool.maxConcurrentStreams,
      })),
      queued: this.#queue.length + (this.#http1?.queued ?? 0),
      requestsByAddress: Object.fromEntries(this.#requestsByAddress),
      addresses: this.#health.stats(),
      panic: this.#health.panic,
      pingInterval: this.pingInterval(),
    }
  }
}

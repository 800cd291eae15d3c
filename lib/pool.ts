import type { Call } from './call.js'
import { publish } from './channels.js'
import type { Clock, TimerHandle } from './clock.js'
import type { Connection, Engine, Goaway, LocalSettings } from './engine.js'
import { ConnectionLostError, ConnectTimeoutError, DrainTimeoutError, ReadOnlyError } from './errors.js'
import { Exchange, type ExchangeHost } from './exchange.js'
import { Liveness, type Deadline } from './liveness.js'
import { defaults, type ResolvedOptions } from './options.js'
import { SlotSet } from './slot-set.js'

/**
 * A pool's state, with what each state holds. A pool is one HTTP/2
 * connection (as in Finch, where an HTTP/2 pool is one multiplexed
 * connection; the name is the design's vocabulary, not undici's Pool).
 */
export type PoolState =
  | { readonly name: 'connecting'; readonly abort: AbortController; readonly deadline: TimerHandle | undefined }
  | { readonly name: 'open'; readonly connection: Connection }
  | { readonly name: 'draining'; readonly connection: Connection; readonly reason: DrainReason; deadline: TimerHandle | undefined }
  | { readonly name: 'closed'; readonly reason: CloseReason; readonly error: Error | undefined }

/** Where a pool is in its lifecycle. */
export type PoolStateName = PoolState['name']

/** Why a pool stopped taking requests. */
export type DrainReason = 'successor-ready' | 'origin-idle' | 'idle-timeout' | 'goaway' | 'close-requested'

/** Why a pool closed. */
export type CloseReason = DrainReason | 'connect-failed' | 'client-closed' | 'connection-lost' | 'ping-timeout' | 'drain-deadline' | 'destroyed'

export type PoolEvent =
  | { readonly type: 'connected'; readonly connection: Connection }
  | { readonly type: 'connect-failed'; readonly error: Error }
  /** Its owner retires it: a successor took over, the origin is idle, the client closes. */
  | { readonly type: 'drain-requested'; readonly reason: 'successor-ready' | 'origin-idle' | 'close-requested' }
  | { readonly type: 'idle-timeout' }
  | { readonly type: 'goaway-received'; readonly goaway: Goaway }
  | { readonly type: 'ping-timeout'; readonly error: Error }
  /** The engine found the connection broken (socket error, a connection error either side detected). */
  | { readonly type: 'connection-failed'; readonly error: Error }
  /** The socket is gone and every stream was reported. */
  | { readonly type: 'connection-closed' }
  | { readonly type: 'drain-deadline' }
  | { readonly type: 'destroy-requested'; readonly error: Error }

/** What a pool knows of its origin. */
export interface OriginContext {
  readonly origin: string
  readonly url: URL
  readonly options: ResolvedOptions
  readonly clock: Clock
  readonly engine: Engine
  readonly settings: LocalSettings
  /** The PING interval in force (doubled after `too_many_pings`). */
  pingInterval(): number
}

/** How a pool reports to its owner (the origin, which tells the pool's shard). */
export interface PoolOwner {
  /** A fresh DNS lookup: the addresses to try, the one this pool should take first. */
  addresses(pool: Pool, signal: AbortSignal): Promise<string[]>
  transitioned(pool: Pool, from: PoolState, event: PoolEvent): void
  /** A stream slot opened up, or the server allowed more streams. */
  slotFreed(pool: Pool): void
  /** An exchange ended (`exchange.outcome`): what it tells of the pool's address. */
  completed(pool: Pool, exchange: Exchange): void
  /** Every GOAWAY, also those a draining pool receives. */
  goaway(pool: Pool, goaway: Goaway): void
  /** The pool opened its `maxRequestsPerConnection`-th stream. */
  limitReached(pool: Pool): void
}

let nextId = 1

/**
 * One HTTP/2 connection and its lifecycle. Every state and every transition
 * is in this file:
 *
 *   connecting ──connected──▶ open ──drain-requested / idle-timeout / goaway-received──▶ draining
 *       │                      │                                                           │
 *       │ connect-failed,      │ connection-failed / connection-closed /                   │ connection-closed (streams done)
 *       │ drain-requested,     │ ping-timeout / destroy-requested                          │ drain-deadline / ping-timeout /
 *       │ destroy-requested    ▼                                                           │ connection-failed / destroy-requested
 *       └──────────────────▶ closed ◀─────────────────────────────────────────────────────┘
 *
 * A pool never decides to be replaced: its shard (`shard.ts`) does. The pool
 * reports what happened to the connection and leaves the rest to its owner.
 */
export class Pool implements ExchangeHost {
  readonly id = nextId++
  readonly shard: number
  readonly clock: Clock
  readonly scheme: 'https' | 'http'
  readonly authority: string
  readonly headersTimeout: number
  readonly bodyTimeout: number
  readonly maxHeaderFields: number
  /** The pool this one takes over from (a recycle, a replacement), for `drainpipe:pool:connect`. */
  readonly successorOf: number | undefined
  readonly #context: OriginContext
  readonly #owner: PoolOwner
  readonly #exchanges = new SlotSet<Exchange>()
  #state: PoolState
  /** Events that arrive while one is being handled (a stream failed by this transition reports back): handled after it. */
  readonly #mailbox: PoolEvent[] = []
  #handling = false
  #liveness: Liveness | undefined
  #idleTimer: TimerHandle | undefined
  #lostError: Error | undefined
  #address: string | undefined
  #connectedAt: number | undefined
  #startedAt = 0
  #started = false
  /** Streams opened. */
  served = 0
  /** Streams that got a response head: proof that the server serves on this connection. */
  responses = 0

  constructor(context: OriginContext, shard: number, owner: PoolOwner, successorOf?: number) {
    this.#context = context
    this.#owner = owner
    this.shard = shard
    this.successorOf = successorOf
    this.clock = context.clock
    this.scheme = context.url.protocol === 'https:' ? 'https' : 'http'
    this.authority = context.url.host
    this.headersTimeout = context.options.headersTimeout
    this.bodyTimeout = context.options.bodyTimeout
    this.maxHeaderFields = context.options.maxHeaderFields
    this.#state = { name: 'connecting', abort: new AbortController(), deadline: undefined }
  }

  get state(): PoolState {
    return this.#state
  }

  get origin(): string {
    return this.#context.origin
  }

  /** The address this pool connects (or connected) to. */
  get address(): string | undefined {
    return this.#address
  }

  get inFlight(): number {
    return this.#exchanges.size
  }

  /** The server's SETTINGS_MAX_CONCURRENT_STREAMS. */
  get maxConcurrentStreams(): number | undefined {
    return connectionOf(this.#state)?.maxConcurrentStreams
  }

  /** May take a new request now: open, accepting, not in doubt, with a free stream slot. */
  get hasCapacity(): boolean {
    const state = this.#state
    const connection = state.name === 'open' ? state.connection : undefined
    if (connection === undefined || !connection.accepting || this.#liveness?.doubtful) return false
    // A stream whose response ended can still be sending its request body: the engine counts it, the pool no longer does.
    return Math.max(this.#exchanges.size, connection.activeStreams) < connection.maxConcurrentStreams
  }

  /** Milliseconds since the connection was established. */
  get age(): number {
    return this.#connectedAt === undefined ? 0 : this.clock.now() - this.#connectedAt
  }

  /** Starts connecting: a fresh lookup, then the engine. Called once, by the shard. */
  connect(): void {
    const state = this.#state
    if (state.name !== 'connecting' || this.#started) return
    this.#started = true
    this.#startedAt = this.clock.now()
    const { connectTimeout } = this.#context.options
    const deadline =
      connectTimeout > 0 ? this.clock.setTimeout(() => state.abort.abort(new ConnectTimeoutError(connectTimeout)), connectTimeout) : undefined
    this.#state = { ...state, deadline }
    void this.#connect(state.abort.signal)
  }

  /** Sends a request on this connection. A pool that stopped taking requests refuses it before a byte is written. */
  run(call: Call): void {
    const state = this.#state
    if (state.name !== 'open' || !state.connection.accepting) {
      call.fail(new ReadOnlyError(`Pool ${this.id} is ${state.name === 'open' ? 'closing' : state.name}; the request was not processed`))
      return
    }
    const exchange = Exchange.start(this, state.connection, call)
    if (exchange === undefined) return
    this.#exchanges.add(exchange)
    this.served++
    this.#clearIdleTimer()
    // `served` grows by one: it equals the limit exactly once, so the limit is reported once.
    if (this.served === this.#context.options.maxRequestsPerConnection) this.#owner.limitReached(this)
  }

  answered(): void {
    this.responses++
  }

  suspect(): void {
    this.#liveness?.suspect()
  }

  released(exchange: Exchange): void {
    if (!this.#exchanges.delete(exchange)) return
    this.#owner.completed(this, exchange)
    const state = this.#state
    if (state.name === 'open') {
      if (this.#exchanges.size === 0) this.#armIdleTimer()
      this.#owner.slotFreed(this)
    } else if (state.name === 'draining' && this.#exchanges.size === 0) {
      state.connection.close()
    }
  }

  /** The one path by which the pool changes state; each event runs to completion before the next. */
  transition(event: PoolEvent): void {
    this.#mailbox.push(event)
    if (this.#handling) return
    this.#handling = true
    try {
      for (let next = this.#mailbox.shift(); next !== undefined; next = this.#mailbox.shift()) this.#step(next)
    } finally {
      this.#handling = false
    }
  }

  #step(event: PoolEvent): void {
    const from = this.#state
    const to = this.#next(from, event)
    if (to === from) {
      // A connection that came up after the pool gave up on it.
      if (event.type === 'connected') event.connection.destroy()
      return
    }
    this.#exit(from)
    this.#state = to
    this.#enter(to, from, event)
    this.#owner.transitioned(this, from, event)
  }

  /** The transition table: what each event does in each state (unlisted pairs change nothing). */
  #next(state: PoolState, event: PoolEvent): PoolState {
    const closed = (reason: CloseReason, error?: Error): PoolState => ({ name: 'closed', reason, error })
    switch (state.name) {
      case 'connecting':
        switch (event.type) {
          case 'connected':
            return { name: 'open', connection: event.connection }
          case 'connect-failed':
            return closed('connect-failed', event.error)
          case 'drain-requested':
            return closed('client-closed')
          case 'destroy-requested':
            return closed('destroyed', event.error)
          default:
            return state
        }
      case 'open':
        switch (event.type) {
          case 'drain-requested':
            return { name: 'draining', connection: state.connection, reason: event.reason, deadline: undefined }
          case 'idle-timeout':
            return { name: 'draining', connection: state.connection, reason: 'idle-timeout', deadline: undefined }
          case 'goaway-received':
            return { name: 'draining', connection: state.connection, reason: 'goaway', deadline: undefined }
          case 'ping-timeout':
            return closed('ping-timeout', event.error)
          case 'connection-failed':
            return closed('connection-lost', event.error)
          case 'connection-closed':
            return closed('connection-lost', this.#lostError)
          case 'destroy-requested':
            return closed('destroyed', event.error)
          default:
            return state
        }
      case 'draining':
        switch (event.type) {
          case 'connection-closed':
            return closed(state.reason)
          case 'connection-failed':
            return closed('connection-lost', event.error)
          case 'drain-deadline':
            return closed('drain-deadline')
          case 'ping-timeout':
            return closed('ping-timeout', event.error)
          case 'destroy-requested':
            return closed('destroyed', event.error)
          default:
            return state
        }
      case 'closed':
        return state
    }
  }

  #exit(state: PoolState): void {
    if (state.name === 'connecting' || state.name === 'draining') {
      if (state.deadline !== undefined) this.clock.clearTimeout(state.deadline)
    }
  }

  #enter(state: PoolState, from: PoolState, event: PoolEvent): void {
    switch (state.name) {
      case 'open':
        this.#opened(state.connection)
        return
      case 'draining': {
        this.#clearIdleTimer()
        publish('drainpipe:pool:drain', () => ({ ...this.info(), reason: state.reason, inFlight: this.#exchanges.size }))
        const { drainTimeout } = this.#context.options
        if (drainTimeout > 0) state.deadline = this.clock.setTimeout(() => this.transition({ type: 'drain-deadline' }), drainTimeout)
        if (this.#exchanges.size === 0) state.connection.close()
        return
      }
      case 'closed':
        this.#closed(state, from, event)
        return
      default:
        return
    }
  }

  #opened(connection: Connection): void {
    this.#connectedAt = this.clock.now()
    this.#address = connection.address
    connection.listen({
      settings: () => this.#owner.slotFreed(this),
      goaway: (goaway) => {
        const text = goaway.debug.toString('utf8')
        publish('drainpipe:pool:goaway', () => ({ ...this.info(), errorCode: goaway.errorCode, lastStreamId: goaway.lastStreamId, debug: text }))
        this.#owner.goaway(this, goaway)
        this.transition({ type: 'goaway-received', goaway })
      },
      error: (error) => {
        this.#lostError ??= error
        this.transition({ type: 'connection-failed', error })
      },
      closed: () => this.transition({ type: 'connection-closed' }),
    })
    // With keepAlive off there are no periodic PINGs (interval 0), but a suspect connection is still probed.
    const { timeout, whenIdle } = this.#context.options.keepAlive || defaults.keepAlive
    this.#liveness = new Liveness(
      connection,
      this.clock,
      { interval: () => this.#context.pingInterval(), timeout, whenIdle },
      () => this.#exchanges.size > 0,
      (deadline) => this.#pingTimedOut(deadline),
      () => this.#owner.slotFreed(this),
    )
    this.#armIdleTimer()
    publish('drainpipe:pool:connect', () => ({
      ...this.info(),
      connectDuration: this.#connectedAt! - this.#startedAt,
      successorOf: this.successorOf,
    }))
  }

  #pingTimedOut({ timeout, probe }: Deadline): void {
    const interval = this.#context.pingInterval()
    const which = probe ? 'the probe after a request timed out' : 'keepAlive.timeout'
    const error = new ConnectionLostError(`No PING acknowledgement within ${timeout} ms (${which}): the connection is dead`)
    this.#lostError = error
    publish('drainpipe:pool:ping-timeout', () => ({ ...this.info(), interval, timeout }))
    this.transition({ type: 'ping-timeout', error })
  }

  #closed(state: Extract<PoolState, { name: 'closed' }>, from: PoolState, event: PoolEvent): void {
    this.#liveness?.stop()
    this.#clearIdleTimer()
    if (from.name === 'connecting') {
      from.abort.abort(state.error ?? new ConnectionLostError('The pool closed while connecting'))
    } else {
      // Streams still open past the drain deadline are cancelled; after a loss they fail as lost.
      const leftover =
        event.type === 'drain-deadline'
          ? new DrainTimeoutError(this.#context.options.drainTimeout)
          : event.type === 'destroy-requested'
            ? event.error
            : undefined
      if (leftover) for (const exchange of this.#exchanges.values()) exchange.terminate(leftover)
      connectionOf(from)!.destroy(state.error ?? this.#lostError)
    }
    publish('drainpipe:pool:close', () => ({
      ...this.info(),
      reason: state.reason,
      age: this.age,
      served: this.served,
      ...(state.error ? { error: state.error } : {}),
    }))
  }

  async #connect(signal: AbortSignal): Promise<void> {
    try {
      const addresses = await abortable(this.#owner.addresses(this, signal), signal)
      // Claimed now, so pools choosing at the same moment spread out; the engine may reach a fallback.
      this.#address = addresses[0]
      const connection = await this.#context.engine.connect(
        {
          origin: this.#context.origin,
          url: this.#context.url,
          addresses,
          tls: this.#context.options.connect,
          settings: this.#context.settings,
          clock: this.clock,
        },
        signal,
      )
      this.transition({ type: 'connected', connection })
    } catch (error) {
      publish('drainpipe:pool:connect-failed', () => ({ ...this.info(), error: error as Error }))
      this.transition({ type: 'connect-failed', error: error as Error })
    }
  }

  #armIdleTimer(): void {
    const idleTimeout = this.#context.options.idleTimeout
    if (idleTimeout <= 0 || this.#exchanges.size > 0) return
    this.#clearIdleTimer()
    this.#idleTimer = this.clock.setTimeout(() => this.transition({ type: 'idle-timeout' }), idleTimeout)
  }

  #clearIdleTimer(): void {
    if (this.#idleTimer !== undefined) this.clock.clearTimeout(this.#idleTimer)
    this.#idleTimer = undefined
  }

  info(): { origin: string; id: number; address: string | undefined } {
    return { origin: this.#context.origin, id: this.id, address: this.#address }
  }
}

function connectionOf(state: PoolState): Connection | undefined {
  return state.name === 'open' || state.name === 'draining' ? state.connection : undefined
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error)
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error)
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(error as Error)
      },
    )
  })
}

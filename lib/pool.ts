import type { ClientHttp2Session } from 'node:http2'
import type { Socket } from 'node:net'
import type { Clock, TimerHandle } from './clock.js'
import { publish } from './channels.js'
import { dial } from './dial.js'
import { ConnectionLostError, ConnectTimeoutError, DrainTimeoutError, ReadOnlyError } from './errors.js'
import { Exchange, type ExchangeHost } from './exchange.js'
import { Liveness, type Deadline } from './liveness.js'
import { defaults, type ResolvedOptions } from './options.js'
import type { Call } from './request.js'

/** A pool's state, with what each state holds (its session, timers). */
export type PoolState =
  | { readonly name: 'connecting'; readonly abort: AbortController; readonly deadline: TimerHandle | undefined }
  | { readonly name: 'open'; readonly session: ClientHttp2Session; timer: TimerHandle | undefined }
  | { readonly name: 'recycling'; readonly session: ClientHttp2Session }
  | {
      readonly name: 'draining'
      readonly session: ClientHttp2Session
      readonly reason: string
      deadline: TimerHandle | undefined
    }
  | { readonly name: 'closed'; readonly reason: string; readonly error: Error | undefined }

/** Where a pool is in its lifecycle: `connecting`, `open`, `recycling` (its successor is connecting), `draining` (read-only) or `closed`. */
export type PoolStateName = 'connecting' | 'open' | 'recycling' | 'draining' | 'closed'

export type PoolEvent =
  | { readonly type: 'connected'; readonly session: ClientHttp2Session }
  | { readonly type: 'connect-failed'; readonly error: Error }
  /** The supervisor started a successor; this pool serves until it is ready. */
  | { readonly type: 'recycle-started' }
  /** The successor could not be made: keep serving, try again after the cooldown. */
  | { readonly type: 'recycle-failed'; readonly error: Error }
  | { readonly type: 'successor-ready' }
  /** The age expired while the origin had no requests for a whole age: close without successor. */
  | { readonly type: 'origin-idle' }
  | { readonly type: 'idle-timeout' }
  | { readonly type: 'goaway-received'; readonly errorCode: number; readonly lastStreamId: number; readonly debug: string }
  | { readonly type: 'ping-timeout' }
  | { readonly type: 'session-closed'; readonly error: Error | undefined }
  | { readonly type: 'drain-deadline' }
  | { readonly type: 'close-requested' }
  | { readonly type: 'destroy-requested'; readonly error: Error }

/** Why the supervisor is asked to replace a pool that is still serving. */
export type ExpiryReason = 'age' | 'cooldown' | 'requests' | 'address-removed'

/** What a pool knows of its origin. */
export interface OriginContext {
  readonly origin: string
  readonly url: URL
  readonly options: ResolvedOptions
  readonly clock: Clock
  readonly random: () => number
  /** The PING interval in force (doubled after `too_many_pings`). */
  pingInterval(): number
}

/** How a pool reports to its supervisor. */
export interface PoolHooks {
  /** A fresh DNS lookup and the address this pool should connect to. */
  resolve(pool: Pool): Promise<string>
  transitioned(pool: Pool, from: PoolState, event: PoolEvent): void
  expired(pool: Pool, reason: ExpiryReason): void
  slotFreed(pool: Pool): void
  /** Counted and acted on even when the pool is already draining. */
  goaway(pool: Pool, errorCode: number, debug: string): void
}

let nextId = 1

/**
 * A pool is one HTTP/2 connection and its lifecycle (as in Finch, where an
 * HTTP/2 pool is one multiplexed connection). Every state and every
 * transition is in this file:
 *
 *   connecting ──connected──▶ open ──recycle-started──▶ recycling
 *       │                      │  ▲                        │
 *       │ connect-failed       │  └──recycle-failed────────┤ successor-ready
 *       ▼                      ▼                           ▼
 *    closed ◀── ping-timeout / session-closed ──── draining (read-only)
 *       ▲                                                   │
 *       └──────── session-closed (streams done) / drain-deadline
 *
 * The pool never decides on its own to recycle: age, cooldown and request
 * limits are reported to the supervisor (`Client`), which starts a successor
 * and tells the pool what happened.
 */
export class Pool implements ExchangeHost {
  readonly id = nextId++
  readonly shard: number
  readonly clock: Clock
  readonly scheme: 'https' | 'http'
  readonly authority: string
  readonly headersTimeout: number
  readonly bodyTimeout: number
  readonly #context: OriginContext
  readonly #hooks: PoolHooks
  readonly #exchanges = new Set<Exchange>()
  #state: PoolState
  #liveness: Liveness | undefined
  #idleTimer: TimerHandle | undefined
  #lostError: Error | undefined
  #goawayLastStreamId: number | undefined
  readonly #replaces: number | undefined
  #socket: Socket | undefined
  address: string | undefined
  #connectedAt: number | undefined
  readonly #startedAt: number
  served = 0

  /**
   * @param replaces the pool this one takes over from (a recycle or a
   * GOAWAY replacement), reported in `drainpipe:pool:connect`.
   */
  constructor(context: OriginContext, shard: number, hooks: PoolHooks, replaces?: Pool) {
    this.#context = context
    this.#replaces = replaces?.id
    this.#hooks = hooks
    this.shard = shard
    this.clock = context.clock
    this.scheme = context.url.protocol === 'https:' ? 'https' : 'http'
    this.authority = context.url.host
    this.headersTimeout = context.options.headersTimeout
    this.bodyTimeout = context.options.bodyTimeout
    this.#startedAt = context.clock.now()
    const abort = new AbortController()
    const { connectTimeout } = context.options
    const deadline =
      connectTimeout > 0
        ? this.clock.setTimeout(() => abort.abort(new ConnectTimeoutError(connectTimeout)), connectTimeout)
        : undefined
    this.#state = { name: 'connecting', abort, deadline }
    void this.#connect(abort.signal)
  }

  get state(): PoolState {
    return this.#state
  }

  get origin(): string {
    return this.#context.origin
  }

  get inFlight(): number {
    return this.#exchanges.size
  }

  get goawayLastStreamId(): number | undefined {
    return this.#goawayLastStreamId
  }

  get lostError(): Error | undefined {
    return this.#lostError
  }

  /** The server's SETTINGS_MAX_CONCURRENT_STREAMS (Node reports 2^32-1 when unset). */
  get maxConcurrentStreams(): number | undefined {
    const session = sessionOf(this.#state)
    return session?.remoteSettings.maxConcurrentStreams
  }

  /** May take a new request now: open (or serving while its successor connects) with a free stream slot. */
  get hasCapacity(): boolean {
    const state = this.#state
    if (state.name !== 'open' && state.name !== 'recycling') return false
    // node:http2 tears a session down before it says so ('close' comes later): not usable meanwhile.
    if (state.session.destroyed || state.session.closed || this.#liveness?.doubtful) return false
    return this.#exchanges.size < (state.session.remoteSettings.maxConcurrentStreams ?? Infinity)
  }

  get age(): number {
    return this.#connectedAt === undefined ? 0 : this.clock.now() - this.#connectedAt
  }

  /** Sends a request on this connection. A read-only pool refuses it before a byte is written. */
  run(call: Call): void {
    const state = this.#state
    if (state.name !== 'open' && state.name !== 'recycling') {
      call.fail(new ReadOnlyError(`Pool ${this.id} is ${state.name}; the request was not processed`))
      return
    }
    if (state.session.destroyed) {
      this.transition({ type: 'session-closed', error: this.#lostError })
      call.fail(new ReadOnlyError(`Pool ${this.id} lost its connection; the request was not processed`))
      return
    }
    const exchange = Exchange.start(this, state.session, call)
    if (exchange === undefined) return
    this.#exchanges.add(exchange)
    this.served++
    this.#clearIdleTimer()
    // `served` grows by one: it equals the limit exactly once, so the limit is reported once.
    if (this.served === this.#context.options.maxRequestsPerConnection) this.#hooks.expired(this, 'requests')
  }

  received(): void {
    this.#liveness?.received()
  }

  suspect(): void {
    this.#liveness?.suspect()
  }

  released(exchange: Exchange): void {
    this.#exchanges.delete(exchange)
    const state = this.#state
    if (state.name === 'open' || state.name === 'recycling') {
      if (this.#exchanges.size === 0) this.#armIdleTimer()
      this.#hooks.slotFreed(this)
    } else if (state.name === 'draining') {
      this.#closeWhenDrained(state.session)
    }
  }

  /**
   * GOAWAY goes out once the last stream is done, not when the drain starts:
   * servers answer a client's GOAWAY with their own, and would refuse the
   * streams still on the wire towards them.
   */
  #closeWhenDrained(session: ClientHttp2Session): void {
    if (this.#exchanges.size > 0) return
    // node:http2 closes a session itself after a server's GOAWAY.
    if (!session.closed) session.close()
    // It then ends its half of the socket and waits for the server's FIN, which a
    // server that sent GOAWAY may never send: once our GOAWAY and FIN are out, we are done.
    const socket = this.#socket
    if (socket === undefined || socket.destroyed) return
    if (socket.writableFinished) socket.destroy()
    else socket.once('finish', () => socket.destroy())
  }

  /** The one path by which the pool changes state. */
  transition(event: PoolEvent): void {
    const from = this.#state
    const to = this.#next(from, event)
    if (to === from) {
      // A session that finished connecting after the pool gave up on it.
      if (event.type === 'connected') event.session.destroy()
      return
    }
    this.#exit(from)
    this.#state = to
    this.#enter(to, from, event)
    this.#hooks.transitioned(this, from, event)
  }

  /** The transition table: what each event does in each state (unlisted pairs are ignored). */
  #next(state: PoolState, event: PoolEvent): PoolState {
    const closed = (reason: string, error?: Error): PoolState => ({ name: 'closed', reason, error })
    const draining = (session: ClientHttp2Session, reason: string): PoolState => ({
      name: 'draining',
      session,
      reason,
      deadline: undefined,
    })
    switch (state.name) {
      case 'connecting':
        switch (event.type) {
          case 'connected':
            return { name: 'open', session: event.session, timer: undefined }
          case 'connect-failed':
            return closed('connect-failed', event.error)
          case 'close-requested':
            return closed('client-closed')
          case 'destroy-requested':
            return closed('destroyed', event.error)
          default:
            return state
        }
      case 'open':
      case 'recycling':
        switch (event.type) {
          case 'recycle-started':
            return state.name === 'open' ? { name: 'recycling', session: state.session } : state
          case 'recycle-failed':
            return state.name === 'recycling' ? { name: 'open', session: state.session, timer: undefined } : state
          case 'successor-ready':
          case 'origin-idle':
          case 'idle-timeout':
          case 'close-requested':
            return draining(state.session, event.type)
          case 'goaway-received':
            return draining(state.session, 'goaway')
          case 'ping-timeout':
            return closed('ping-timeout', this.#lostError)
          case 'session-closed':
            return closed('connection-lost', event.error)
          case 'destroy-requested':
            return closed('destroyed', event.error)
          default:
            return state
        }
      case 'draining':
        switch (event.type) {
          case 'session-closed':
            return closed(state.reason)
          case 'drain-deadline':
            return closed('drain-deadline')
          case 'ping-timeout':
            return closed('ping-timeout', this.#lostError)
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
    switch (state.name) {
      case 'connecting':
        if (state.deadline !== undefined) this.clock.clearTimeout(state.deadline)
        return
      case 'open':
        if (state.timer !== undefined) this.clock.clearTimeout(state.timer)
        return
      case 'draining':
        if (state.deadline !== undefined) this.clock.clearTimeout(state.deadline)
        return
      default:
        return
    }
  }

  #enter(state: PoolState, from: PoolState, event: PoolEvent): void {
    const options = this.#context.options
    switch (state.name) {
      case 'open': {
        if (from.name === 'connecting') this.#opened(state.session)
        // A fresh connection lives its age; one whose successor failed waits out the cooldown.
        const [delay, reason]: [number, ExpiryReason] =
          from.name === 'recycling'
            ? [options.recycleCooldown, 'cooldown']
            : [options.maxConnectionAge > 0 ? options.maxConnectionAge + this.#context.random() * options.maxConnectionAgeJitter : 0, 'age']
        if (delay > 0) state.timer = this.clock.setTimeout(() => this.#hooks.expired(this, reason), delay)
        return
      }
      case 'draining': {
        this.#clearIdleTimer()
        publish('drainpipe:pool:drain', () => ({ ...this.info(), reason: state.reason, inFlight: this.#exchanges.size }))
        if (options.drainTimeout > 0) {
          state.deadline = this.clock.setTimeout(() => this.transition({ type: 'drain-deadline' }), options.drainTimeout)
        }
        this.#closeWhenDrained(state.session)
        return
      }
      case 'closed':
        this.#closed(state, from, event)
        return
      default:
        return
    }
  }

  #opened(session: ClientHttp2Session): void {
    this.#connectedAt = this.clock.now()
    session.on('goaway', (errorCode: number, lastStreamId: number, debug: Buffer | undefined) => {
      this.#goawayLastStreamId = Math.min(lastStreamId, this.#goawayLastStreamId ?? Infinity)
      const text = debug?.toString('utf8') ?? ''
      publish('drainpipe:pool:goaway', () => ({ ...this.info(), errorCode, lastStreamId, debug: text }))
      this.#hooks.goaway(this, errorCode, text)
      this.transition({ type: 'goaway-received', errorCode, lastStreamId, debug: text })
    })
    // node:http2 reports a session error (a protocol violation, a flood) as it destroys the
    // session, well before 'close': the pool is gone from that moment.
    session.on('error', (error: Error) => {
      this.#lostError ??= error
      this.transition({ type: 'session-closed', error })
    })
    session.on('close', () => this.transition({ type: 'session-closed', error: this.#lostError }))
    // A socket that ends without a GOAWAY is a lost connection too.
    session.socket?.on('error', (error: Error) => {
      this.#lostError ??= error
    })
    // With keepAlive off there are no periodic PINGs (interval 0), but a suspect connection is still probed.
    const { timeout, whenIdle } = this.#context.options.keepAlive || defaults.keepAlive
    this.#liveness = new Liveness(
      session,
      this.clock,
      { interval: () => this.#context.pingInterval(), timeout, whenIdle },
      () => this.#exchanges.size > 0,
      (deadline) => this.#pingTimedOut(deadline),
      () => this.#hooks.slotFreed(this),
    )
    this.#armIdleTimer()
    publish('drainpipe:pool:connect', () => ({
      ...this.info(),
      connectDuration: this.#connectedAt! - this.#startedAt,
      successorOf: this.#replaces,
    }))
  }

  #pingTimedOut({ timeout, probe }: Deadline): void {
    const interval = this.#context.pingInterval()
    const which = probe ? 'the probe after a request timed out' : 'keepAlive.timeout'
    this.#lostError = new ConnectionLostError(`No PING acknowledgement within ${timeout} ms (${which}): the connection is dead`)
    publish('drainpipe:pool:ping-timeout', () => ({ ...this.info(), interval, timeout }))
    this.transition({ type: 'ping-timeout' })
  }

  #closed(state: Extract<PoolState, { name: 'closed' }>, from: PoolState, event: PoolEvent): void {
    this.#liveness?.stop()
    this.#clearIdleTimer()
    if (from.name === 'connecting') {
      from.abort.abort(state.error ?? new ConnectionLostError('The pool closed while connecting'))
    } else {
      const session = sessionOf(from)!
      // Streams still open past the drain deadline are cancelled; after a loss they fail as lost.
      const leftover =
        event.type === 'drain-deadline'
          ? new DrainTimeoutError(this.#context.options.drainTimeout)
          : event.type === 'destroy-requested'
            ? event.error
            : undefined
      if (leftover) for (const exchange of [...this.#exchanges]) exchange.terminate(leftover)
      if (!session.destroyed) session.destroy()
      // A session closed gracefully only ends its socket and waits for the peer's FIN.
      this.#socket?.destroy()
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
      const address = await abortable(this.#hooks.resolve(this), signal)
      this.address = address
      const { session, socket } = await dial(
        {
          origin: this.#context.origin,
          url: this.#context.url,
          address,
          tls: this.#context.options.connect,
        },
        signal,
      )
      this.#socket = socket
      this.transition({ type: 'connected', session })
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
    return { origin: this.#context.origin, id: this.id, address: this.address }
  }
}

function sessionOf(state: PoolState): ClientHttp2Session | undefined {
  return state.name === 'connecting' || state.name === 'closed' ? undefined : state.session
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

// Every state's name is a PoolStateName, and every PoolStateName is a state.
type Exact<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never
const namesMatch: Exact<PoolState['name'], PoolStateName> = true
void namesMatch

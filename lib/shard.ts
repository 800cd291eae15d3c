import { Backoff } from './backoff.js'
import type { Clock, TimerHandle } from './clock.js'
import type { Pool } from './pool.js'

/** Why a serving pool is replaced while it still works. */
export type RecycleReason = 'age' | 'cooldown' | 'requests' | 'address-removed' | 'address-ejected' | 'address-returned'

/** A shard's state, with the pools and the timer each state holds. */
export type ShardState =
  /** No connection, none wanted: the next request starts one. */
  | { readonly name: 'idle' }
  /** The shard's connection is being made. */
  | { readonly name: 'connecting'; readonly pool: Pool }
  /** After a failed connect or the loss of a connection that never proved itself: wait before the next. */
  | { readonly name: 'backoff'; readonly timer: TimerHandle }
  /** One open connection; `timer` fires when it is due for a recycle (its age, or the cooldown after a failed one). */
  | { readonly name: 'serving'; readonly pool: Pool; readonly timer: TimerHandle | undefined }
  /** Make-before-break: the successor connects while the pool keeps serving. */
  | { readonly name: 'replacing'; readonly pool: Pool; readonly successor: Pool; readonly reason: RecycleReason }
  /** The client is closing: no new connection, no timer; the pool (if any) serves what is queued. */
  | { readonly name: 'finishing'; readonly pool: Pool | undefined }
  | { readonly name: 'closed' }

/** Where a shard is: `idle`, `connecting`, `backoff`, `serving`, `replacing`, `finishing` or `closed`. */
export type ShardStateName = ShardState['name']

/** What happened, as the shard hears of it. */
export type ShardEvent =
  /** A request is waiting or in flight on the origin: connections are wanted. */
  | { readonly type: 'demand' }
  | { readonly type: 'connected'; readonly pool: Pool }
  | { readonly type: 'connect-failed'; readonly pool: Pool; readonly error: Error }
  /** A pool stopped taking requests on its own: the server's GOAWAY, or its idle timeout. */
  | { readonly type: 'retired'; readonly pool: Pool; readonly reason: 'goaway' | 'idle-timeout' }
  /** A pool closed while it served (connection lost, PING timeout). */
  | { readonly type: 'lost'; readonly pool: Pool }
  | { readonly type: 'recycle-due'; readonly reason: RecycleReason }
  | { readonly type: 'backoff-over' }
  /** The client closes gracefully. */
  | { readonly type: 'closing' }
  /** Nothing is left to serve while closing: retire the pool. */
  | { readonly type: 'finished' }
  | { readonly type: 'destroyed' }

/** What a shard needs from its origin. */
export interface ShardOwner {
  readonly clock: Clock
  readonly random: () => number
  readonly maxConnectionAge: number
  readonly maxConnectionAgeJitter: number
  readonly recycleCooldown: number
  /** Makes a pool for this shard and starts connecting it. */
  startPool(shard: Shard, successorOf?: Pool): Pool
  /** Requests are waiting or in flight. */
  hasDemand(): boolean
  /** No request for a whole age, none waiting or in flight: an age expiry closes without a successor. */
  isIdle(): boolean
  /** A planned recycle ended: the successor took over, or the pool keeps serving. */
  recycled(pool: Pool, reason: RecycleReason, outcome: { successor: Pool } | { error: Error }): void
}

/**
 * One of an origin's `count` slots: the owner of its successive connections.
 * The connection's own lifecycle is the pool's (`pool.ts`); the shard
 * decides when a connection is made, replaced, or given up:
 *
 *            demand                connected
 *   idle ──────────────▶ connecting ─────────▶ serving ◀──────── successor connected ──┐
 *    ▲                    │   ▲                 │  │ ▲                                  │
 *    │      connect-failed│   │ backoff-over    │  │ └── successor failed (cooldown) ── replacing
 *    │                    ▼   │ (with demand)   │  └──── recycle-due ────────────────────▲
 *    ├── backoff-over ── backoff ◀──────────────┤ lost / GOAWAY, the pool never served
 *    │   (no demand)                            │
 *    └──── idle origin at recycle-due; idle timeout; lost or GOAWAY (it served) with no demand
 *
 *   closing: idle/backoff → closed; connecting/serving/replacing → finishing → finished → closed
 *   destroyed: any → closed
 *
 * A connection that proved itself (it answered a request, or lived the
 * backoff window) and is lost or told to go away is replaced at once if
 * requests want it, else by the next request; a failed connect, or a
 * connection that never served, backs off first, so a server that accepts
 * and refuses every connection is not stormed. Nothing reconnects without
 * demand.
 */
export class Shard {
  readonly index: number
  readonly #owner: ShardOwner
  readonly #backoff: Backoff
  #state: ShardState = { name: 'idle' }
  /** Events that arrive while one is being handled (a pool told to drain reports back): handled after it, in order. */
  readonly #mailbox: ShardEvent[] = []
  #handling = false

  constructor(index: number, owner: ShardOwner, backoff: Backoff) {
    this.index = index
    this.#owner = owner
    this.#backoff = backoff
  }

  get state(): ShardState {
    return this.#state
  }

  /** The pool that serves (or will serve) this shard's requests, if any. */
  get pool(): Pool | undefined {
    const state = this.#state
    return 'pool' in state ? state.pool : undefined
  }

  /** The pool being replaced, while its successor connects. */
  get replacing(): Pool | undefined {
    return this.#state.name === 'replacing' ? this.#state.pool : undefined
  }

  /** The one path by which the shard changes state; each event runs to completion before the next. */
  transition(event: ShardEvent): void {
    this.#mailbox.push(event)
    if (this.#handling) return
    this.#handling = true
    try {
      for (let next = this.#mailbox.shift(); next !== undefined; next = this.#mailbox.shift()) {
        const from = this.#state
        const to = this.#next(from, next)
        if (to === from) continue
        this.#exit(from)
        this.#state = to
      }
    } finally {
      this.#handling = false
    }
  }

  /** The transition table, with each transition's actions (unlisted pairs change nothing). */
  #next(state: ShardState, event: ShardEvent): ShardState {
    const owner = this.#owner
    if (event.type === 'destroyed') return { name: 'closed' }
    switch (state.name) {
      case 'idle':
        if (event.type === 'demand') return this.#connect()
        if (event.type === 'closing') return { name: 'closed' }
        return state
      case 'connecting':
        if (event.type === 'closing') return { name: 'finishing', pool: state.pool }
        if (!this.#about(state.pool, event)) return state
        if (event.type === 'connected') return this.#serve(state.pool, this.#ageTimer())
        // Backs off whether or not a request waits: the next request must not bring the next attempt forward.
        if (event.type === 'connect-failed') return this.#wait()
        return state
      case 'backoff':
        if (event.type === 'backoff-over') return owner.hasDemand() ? this.#connect() : { name: 'idle' }
        if (event.type === 'closing') return { name: 'closed' }
        return state
      case 'serving':
        if (event.type === 'closing') return { name: 'finishing', pool: state.pool }
        if (event.type === 'recycle-due') {
          if ((event.reason === 'age' || event.reason === 'cooldown') && owner.isIdle()) {
            state.pool.transition({ type: 'drain-requested', reason: 'origin-idle' })
            return { name: 'idle' }
          }
          return { name: 'replacing', pool: state.pool, successor: owner.startPool(this, state.pool), reason: event.reason }
        }
        if (!this.#about(state.pool, event)) return state
        if (event.type === 'retired' && event.reason === 'idle-timeout') return { name: 'idle' }
        if (event.type === 'retired' || event.type === 'lost') return this.#replaceLost(state.pool)
        return state
      case 'replacing':
        if (event.type === 'closing') {
          state.successor.transition({ type: 'drain-requested', reason: 'close-requested' })
          return { name: 'finishing', pool: state.pool }
        }
        if (this.#about(state.successor, event)) {
          if (event.type === 'connected') {
            owner.recycled(state.pool, state.reason, { successor: state.successor })
            state.pool.transition({ type: 'drain-requested', reason: 'successor-ready' })
            return this.#serve(state.successor, this.#ageTimer())
          }
          if (event.type === 'connect-failed') {
            // Best effort: the old connection keeps serving and the recycle is tried again after the cooldown.
            owner.recycled(state.pool, state.reason, { error: event.error })
            return this.#serve(state.pool, this.#timer(owner.recycleCooldown, 'cooldown'))
          }
          return state
        }
        // The old connection went away first: the successor is all there is.
        if (this.#about(state.pool, event) && (event.type === 'retired' || event.type === 'lost')) {
          return { name: 'connecting', pool: state.successor }
        }
        return state
      case 'finishing':
        if (event.type === 'finished') {
          state.pool?.transition({ type: 'drain-requested', reason: 'close-requested' })
          return { name: 'closed' }
        }
        // The pool that was to serve the queue failed or went away: nothing is left to finish.
        if (state.pool !== undefined && this.#about(state.pool, event) && event.type !== 'connected') return { name: 'closed' }
        return state
      case 'closed':
        return state
    }
  }

  /** Whether an event is about this pool (events of pools the shard gave up on change nothing). */
  #about(pool: Pool, event: ShardEvent): boolean {
    return 'pool' in event && event.pool === pool
  }

  #connect(): ShardState {
    return { name: 'connecting', pool: this.#owner.startPool(this) }
  }

  #serve(pool: Pool, timer: TimerHandle | undefined): ShardState {
    return { name: 'serving', pool, timer }
  }

  #wait(): ShardState {
    return { name: 'backoff', timer: this.#owner.clock.setTimeout(() => this.transition({ type: 'backoff-over' }), this.#backoff.next()) }
  }

  /**
   * An unplanned end of a serving connection. One that proved itself is
   * replaced at once if requests want it, or by the next request; one that
   * never served backs off first either way, so that neither waiting
   * requests nor new ones can storm a server that refuses every connection.
   */
  #replaceLost(pool: Pool): ShardState {
    if (pool.responses === 0 && pool.age < this.#backoff.window) return this.#wait()
    this.#backoff.reset()
    return this.#owner.hasDemand() ? { name: 'connecting', pool: this.#owner.startPool(this, pool) } : { name: 'idle' }
  }

  /** The recycle timer of a fresh connection: its age plus jitter (none without `maxConnectionAge`). */
  #ageTimer(): TimerHandle | undefined {
    const { maxConnectionAge, maxConnectionAgeJitter, random } = this.#owner
    if (maxConnectionAge <= 0) return undefined
    return this.#timer(maxConnectionAge + random() * maxConnectionAgeJitter, 'age')
  }

  #timer(delay: number, reason: RecycleReason): TimerHandle | undefined {
    if (delay <= 0) return undefined
    return this.#owner.clock.setTimeout(() => this.transition({ type: 'recycle-due', reason }), delay)
  }

  #exit(state: ShardState): void {
    if ((state.name === 'backoff' || state.name === 'serving') && state.timer !== undefined) this.#owner.clock.clearTimeout(state.timer)
  }
}

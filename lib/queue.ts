import type { Call } from './call.js'
import type { Clock, TimerHandle } from './clock.js'
import { ConnectTimeoutError } from './errors.js'

interface Waiting {
  readonly call: Call
  /** Runs while the call waits for a connection, not while it waits for a stream slot. */
  timer: TimerHandle | undefined
  /** What is left of connectTimeout, and when the timer that spends it was armed. */
  left: number
  armedAt: number
}

/**
 * The calls of one origin that wait, in FIFO order. A call waits either for
 * a connection (none is usable: connecting, reconnecting, or the connections
 * allow no stream) or for a stream slot on a usable one. Only the first
 * wait has a deadline of its own, `connectTimeout`, for all the time the
 * call spends in it: what the error says is what the caller waited, and
 * connections that come up and fail again and again do not make it wait
 * forever. Waiting for a slot is bounded by the streams ahead (each bounded
 * by its own timeouts) and by `maxQueue`.
 */
export class WaitQueue {
  readonly #entries: Waiting[] = []
  readonly #origin: string
  readonly #clock: Clock
  readonly #connectTimeout: number
  /** Whether the origin has a usable connection now. */
  #connected = false
  /** A call left the queue on its own (its deadline, its caller's abort). */
  readonly #left: () => void

  constructor(origin: string, clock: Clock, connectTimeout: number, left: () => void) {
    this.#origin = origin
    this.#clock = clock
    this.#connectTimeout = connectTimeout
    this.#left = left
  }

  get length(): number {
    return this.#entries.length
  }

  push(call: Call): void {
    const waiting: Waiting = { call, timer: undefined, left: this.#connectTimeout, armedAt: 0 }
    this.#entries.push(waiting)
    if (!this.#connected) this.#arm(waiting)
    call.carriedBy(() => {
      this.#remove(waiting)
      this.#left()
    })
  }

  /** The oldest call, no longer waiting. */
  shift(): Call | undefined {
    const waiting = this.#entries.shift()
    if (waiting === undefined) return undefined
    this.#disarm(waiting)
    return waiting.call
  }

  /** Every call, in order, none waiting any more. */
  takeAll(): Call[] {
    const entries = this.#entries.splice(0)
    for (const waiting of entries) this.#disarm(waiting)
    return entries.map((waiting) => waiting.call)
  }

  /** The origin gained its first usable connection, or lost its last: the calls' deadlines follow. */
  connectionUsable(usable: boolean): void {
    if (usable === this.#connected) return
    this.#connected = usable
    for (const waiting of this.#entries) {
      if (usable) this.#disarm(waiting)
      else this.#arm(waiting)
    }
  }

  #arm(waiting: Waiting): void {
    const timeout = this.#connectTimeout
    if (timeout <= 0) return
    waiting.armedAt = this.#clock.now()
    waiting.timer = this.#clock.setTimeout(() => {
      waiting.timer = undefined
      this.#remove(waiting)
      waiting.call.fail(new ConnectTimeoutError(timeout, `No usable connection to ${this.#origin} within ${timeout} ms (connectTimeout)`))
      this.#left()
    }, Math.max(0, waiting.left))
  }

  #disarm(waiting: Waiting): void {
    if (waiting.timer === undefined) return
    this.#clock.clearTimeout(waiting.timer)
    waiting.timer = undefined
    waiting.left -= this.#clock.now() - waiting.armedAt
  }

  #remove(waiting: Waiting): void {
    const index = this.#entries.indexOf(waiting)
    if (index !== -1) this.#entries.splice(index, 1)
    this.#disarm(waiting)
  }
}

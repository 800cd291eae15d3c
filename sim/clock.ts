/**
 * Virtual time for the fleet simulator: a `Clock` (lib/clock.ts) whose
 * timers live in a binary heap and fire only when `run()` reaches them.
 * Every lifecycle timer of every simulated client goes through it, and so
 * does everything the simulated network and load schedule, in one order.
 *
 * Between two timers, the promise continuations that lib/ runs (a pool's
 * connect awaits the lookup, then the engine) must finish at the virtual
 * instant they belong to. A macrotask boundary (setImmediate) is the only
 * point at which Node guarantees that every microtask has run, and it costs
 * about 5 µs; most events (a request sent, a response delivered) touch no
 * promise at all. So an async hook notes whether an event may have queued a
 * microtask (it created or settled a promise, called queueMicrotask or
 * process.nextTick), and only then does the loop wait for the boundary. New asynchronous code in lib/ is
 * covered without the simulator knowing about it.
 */
import { createHook } from 'node:async_hooks'
import type { Clock, TimerHandle } from '../lib/clock.js'

/** A scheduled callback; `callback` is undefined once it fired or was cancelled. */
interface Timer {
  readonly at: number
  /** Insertion order: timers due at the same instant fire in the order they were set, as Node's do. */
  readonly seq: number
  callback: (() => void) | undefined
}

/** Node's largest timer delay. */
const MAX_DELAY = 2 ** 31 - 1

/** Whether any microtask was queued since the flag was last cleared. */
let queued = false
const asyncWork = createHook({
  init(_id, type) {
    if (type === 'PROMISE' || type === 'Microtask' || type === 'TickObject') queued = true
  },
  // Settling a promise that someone awaits queues its continuation without creating anything.
  promiseResolve() {
    queued = true
  },
})

export class VirtualClock implements Clock {
  #now = 0
  #seq = 0
  readonly #heap: Timer[] = []
  /** Cancelled timers still in the heap: removed lazily, or all at once when they are many. */
  #cancelled = 0
  /** Timers fired so far. */
  fired = 0
  /** Times the loop waited for microtasks to finish. */
  drains = 0

  now(): number {
    return this.#now
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    // As Node's setTimeout does: a delay under 1 ms (or NaN, or past 2^31 - 1) is 1 ms. Timers due
    // at once could otherwise reschedule themselves at the same instant forever: lib/liveness.ts
    // rearms after `interval - quiet`, which can come out at 1e-10 ms, less than the clock's
    // floating-point step.
    const delay = ms >= 1 && ms <= MAX_DELAY ? ms : 1
    const timer: Timer = { at: this.#now + delay, seq: this.#seq++, callback }
    this.#push(timer)
    return timer
  }

  clearTimeout(handle: TimerHandle): void {
    const timer = handle as Timer | undefined
    if (timer?.callback === undefined) return
    timer.callback = undefined
    this.#cancelled++
    // Every request arms a headers timer and clears it at the response: without this, a long
    // run would keep millions of dead timers until their (300 s later) due time.
    if (this.#cancelled > 4096 && this.#cancelled * 2 > this.#heap.length) this.#compact()
  }

  /** Timers pending (not cancelled). */
  get pending(): number {
    return this.#heap.length - this.#cancelled
  }

  /**
   * Fires every timer due up to `until` (virtual ms), in order, each at its
   * own instant, with the microtasks it queued run before the next; then
   * time stands at `until`.
   */
  async run(until: number): Promise<void> {
    asyncWork.enable()
    try {
      // Whatever the caller queued before running belongs to the current instant.
      if (queued) await this.#boundary()
      for (;;) {
        const timer = this.#next(until)
        if (timer === undefined) break
        this.#now = timer.at
        const callback = timer.callback!
        timer.callback = undefined
        this.fired++
        callback()
        if (queued) await this.#boundary()
        // Settling the loop's own awaits counts as async work too; all of it is done now.
        queued = false
      }
    } finally {
      asyncWork.disable()
    }
    if (until > this.#now) this.#now = until
  }

  /** Waits until every microtask queued by then, and every one those queued, has run. */
  #boundary(): Promise<void> {
    this.drains++
    return new Promise((resolve) => setImmediate(resolve))
  }

  /** The earliest live timer due by `until`, taken off the heap. */
  #next(until: number): Timer | undefined {
    const heap = this.#heap
    while (heap.length > 0) {
      const top = heap[0]!
      if (top.callback === undefined) {
        this.#pop()
        this.#cancelled--
        continue
      }
      if (top.at > until) return undefined
      this.#pop()
      return top
    }
    return undefined
  }

  #push(timer: Timer): void {
    const heap = this.#heap
    heap.push(timer)
    let i = heap.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(timer, heap[parent]!)) break
      heap[i] = heap[parent]!
      i = parent
    }
    heap[i] = timer
  }

  #pop(): void {
    const heap = this.#heap
    const last = heap.pop()!
    if (heap.length === 0) return
    let i = 0
    const n = heap.length
    for (;;) {
      const left = 2 * i + 1
      if (left >= n) break
      const right = left + 1
      const child = right < n && before(heap[right]!, heap[left]!) ? right : left
      if (!before(heap[child]!, last)) break
      heap[i] = heap[child]!
      i = child
    }
    heap[i] = last
  }

  #compact(): void {
    const live = this.#heap.filter((timer) => timer.callback !== undefined)
    this.#heap.length = 0
    this.#cancelled = 0
    for (const timer of live) this.#push(timer)
  }
}

function before(a: Timer, b: Timer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq)
}

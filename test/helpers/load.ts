/**
 * Steady, bounded load for balance tests and the demo: a fixed number of
 * workers, each sending one request after the other (closed loop), recording
 * which backend answered (the `x-backend` response header) and when.
 *
 * The load stops by itself at `maxDuration` even if nobody calls `stop()`.
 * Balance is measured on the samples afterwards (or live) with `window()`:
 * requests per backend between two instants, and "share" = a backend's
 * requests / all requests in that window.
 */
import { setMaxListeners } from 'node:events'
import { performance } from 'node:perf_hooks'
import { setTimeout as delay } from 'node:timers/promises'

/** Sends one request and resolves with the name of the backend that answered; rejects when it failed. */
export type Send = () => Promise<string>

export interface LoadOptions {
  /** Workers, and so the most requests in flight at any time. */
  concurrency: number
  /**
   * Requests per second in all, if paced: every worker sends at its own steady interval
   * (concurrency / rate), phases spread evenly; a worker that falls behind sends at once, without
   * bursting to catch up. A paced load costs a known share of the CPU, so tests that run side by side
   * keep their rates. Without it, every worker sends again as soon as its answer is in.
   */
  rate?: number
  /** Safety bound (ms): the workers stop on their own after this long. */
  maxDuration: number
  /** Time source in ms; default `performance.now`. */
  now?: () => number
  /**
   * After a response, yield to the event loop with this probability (default 0.5). Workers that
   * never yield run in lockstep, and a lockstep load can resonate with a client's round-robin
   * tie-break (always the same pool wins the ties); real traffic is not periodic. 0 turns it off.
   */
  shuffle?: number
}

export interface Failure {
  at: number
  error: Error
}

export interface Window {
  from: number
  to: number
  total: number
  /** Requests per backend in the window; every expected backend is present (0 when it got none). */
  counts: Record<string, number>
  /** max/min of the expected backends' counts: 1 is perfect, Infinity when one got nothing. */
  ratio: number
}

export class Load {
  readonly #send: Send
  readonly #options: Required<Omit<LoadOptions, 'rate'>> & Pick<LoadOptions, 'rate'>
  /** Completion time of each successful request, ascending. */
  readonly #times: number[] = []
  /** Backend of each successful request, as an index into #names. */
  readonly #backends: number[] = []
  /** How long each successful request took (ms). */
  readonly #durations: number[] = []
  readonly #names: string[] = []
  readonly #index = new Map<string, number>()
  readonly failures: Failure[] = []
  #stopping = false
  readonly #stopped = new AbortController()
  #workers: Promise<void>[] = []
  startedAt = 0

  constructor(send: Send, options: LoadOptions) {
    this.#send = send
    this.#options = { now: () => performance.now(), shuffle: 0.5, ...options }
    // Every pacing worker waits on it.
    setMaxListeners(0, this.#stopped.signal)
  }

  get now(): number {
    return this.#options.now()
  }

  /** Successful requests so far. */
  get ok(): number {
    return this.#times.length
  }

  get failed(): number {
    return this.failures.length
  }

  /** Backends that answered at least once, in order of first answer. */
  get backends(): readonly string[] {
    return this.#names
  }

  start(): this {
    if (this.#workers.length > 0) throw new Error('Load already started')
    this.startedAt = this.now
    const { concurrency, rate, maxDuration, shuffle } = this.#options
    const deadline = this.startedAt + maxDuration
    const interval = rate === undefined ? 0 : (1000 * concurrency) / rate
    const worker = async (index: number) => {
      let next = this.startedAt + (interval * index) / concurrency
      while (!this.#stopping && this.now < deadline) {
        if (interval > 0) {
          const wait = next - this.now
          if (wait > 0) await delay(wait, undefined, { signal: this.#stopped.signal }).catch(() => {})
          if (this.#stopping) break
          next = Math.max(next + interval, this.now)
        }
        try {
          const sent = this.now
          const backend = await this.#send()
          this.#record(backend, this.now - sent)
          if (Math.random() < shuffle) await new Promise((resolve) => setImmediate(resolve))
        } catch (error) {
          this.failures.push({ at: this.now, error: error as Error })
        }
      }
    }
    this.#workers = Array.from({ length: concurrency }, (_, index) => worker(index))
    return this
  }

  /** Stops sending; resolves when every request in flight has finished. */
  async stop(): Promise<void> {
    this.#stopping = true
    this.#stopped.abort()
    await Promise.all(this.#workers)
  }

  #record(backend: string, duration: number): void {
    let index = this.#index.get(backend)
    if (index === undefined) {
      index = this.#names.length
      this.#names.push(backend)
      this.#index.set(backend, index)
    }
    this.#times.push(this.now)
    this.#backends.push(index)
    this.#durations.push(duration)
  }

  /** Durations (ms) of the successful requests that completed in [from, to), ascending. */
  durations(from: number, to: number): number[] {
    return this.#durations.slice(lowerBound(this.#times, from), lowerBound(this.#times, to)).sort((a, b) => a - b)
  }

  /** Failed requests in [from, to). */
  failedIn(from: number, to: number): number {
    return this.failures.filter((failure) => failure.at >= from && failure.at < to).length
  }

  /** Requests per backend that completed in [from, to). `expected` backends count even when they got none. */
  window(from: number, to: number, expected: readonly string[] = []): Window {
    const counts: Record<string, number> = {}
    for (const name of expected) counts[name] = 0
    const start = lowerBound(this.#times, from)
    const end = lowerBound(this.#times, to)
    for (let i = start; i < end; i++) {
      const name = this.#names[this.#backends[i]!]!
      counts[name] = (counts[name] ?? 0) + 1
    }
    return { from, to, total: end - start, counts, ratio: ratio(counts) }
  }
}

/** max/min of the counts; Infinity when a backend got nothing, NaN when there are no backends. */
export function ratio(counts: Record<string, number>): number {
  const values = Object.values(counts)
  if (values.length === 0) return Number.NaN
  const min = Math.min(...values)
  const max = Math.max(...values)
  return min === 0 ? Number.POSITIVE_INFINITY : max / min
}

/** Index of the first element ≥ value in an ascending array. */
function lowerBound(values: readonly number[], value: number): number {
  let low = 0
  let high = values.length
  while (low < high) {
    const mid = (low + high) >>> 1
    if (values[mid]! < value) low = mid + 1
    else high = mid
  }
  return low
}

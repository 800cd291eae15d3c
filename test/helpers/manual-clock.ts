import type { Clock } from '../../lib/clock.js'

/**
 * A clock the test drives: timers fire only when `advance()` passes their
 * time, in order. Sockets keep real time; only lifecycle timers are manual.
 */
export class ManualClock implements Clock {
  #now = 0
  #sequence = 0
  readonly #timers = new Map<number, { at: number; callback: () => void }>()

  now(): number {
    return this.#now
  }

  setTimeout(callback: () => void, ms: number): number {
    const id = ++this.#sequence
    this.#timers.set(id, { at: this.#now + ms, callback })
    return id
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number)
  }

  /** Moves time forward, firing due timers one by one (timers they set are honoured too). */
  advance(ms: number): void {
    const target = this.#now + ms
    for (;;) {
      let next: [number, { at: number; callback: () => void }] | undefined
      for (const entry of this.#timers) if (entry[1].at <= target && (!next || entry[1].at < next[1].at)) next = entry
      if (!next) break
      this.#timers.delete(next[0])
      this.#now = next[1].at
      next[1].callback()
    }
    this.#now = target
  }

  /** Due times of the pending timers, relative to now. */
  pending(): number[] {
    return [...this.#timers.values()].map((timer) => timer.at - this.#now).sort((a, b) => a - b)
  }
}

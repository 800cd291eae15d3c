/**
 * Exponential backoff with full jitter: the n-th delay is drawn uniformly
 * from [0, min(max, base × 2^n)], so clients that lost the same server do
 * not come back in lockstep.
 */
export class Backoff {
  readonly #base: number
  readonly #max: number
  readonly #random: () => number
  #attempt = 0

  constructor(base: number, max: number, random: () => number) {
    this.#base = base
    this.#max = max
    this.#random = random
  }

  /** The next delay; every call widens the window until `max`. */
  next(): number {
    const ceiling = Math.min(this.#max, this.#base * 2 ** this.#attempt)
    this.#attempt++
    return this.#random() * ceiling
  }

  reset(): void {
    this.#attempt = 0
  }

  /** A pool that lived this long proves the fault is over: the backoff starts again from `base`. */
  get window(): number {
    return this.#max
  }
}

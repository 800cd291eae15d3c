/** Opaque handle of a scheduled timer. */
export type TimerHandle = unknown

/**
 * The time source of every lifecycle timer (age, drain deadline, PING,
 * backoff, cooldown). Tests inject a manual clock so lifecycle logic runs in
 * milliseconds and deterministically while sockets keep real time.
 */
export interface Clock {
  /** Milliseconds on a monotonic scale. */
  now(): number
  /** Calls `callback` once, `ms` from now; must not keep the process alive on its own. */
  setTimeout(callback: () => void, ms: number): TimerHandle
  /** Cancels a timer that has not fired. */
  clearTimeout(handle: TimerHandle): void
}

export const realClock: Clock = {
  now: () => performance.now(),
  setTimeout(callback, ms) {
    // Lifecycle timers must never keep the process alive on their own.
    const timer = setTimeout(callback, ms)
    timer.unref()
    return timer
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
}

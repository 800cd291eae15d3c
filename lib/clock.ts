/** Opaque handle of a scheduled timer. */
export type TimerHandle = unknown

/**
 * The time source of every lifecycle timer (age, drain deadline, PING,
 * backoff, cooldown). Tests inject a manual clock so lifecycle logic runs in
 * milliseconds and deterministically while sockets keep real time.
 */
export interface Clock {
  now(): number
  setTimeout(callback: () => void, ms: number): TimerHandle
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

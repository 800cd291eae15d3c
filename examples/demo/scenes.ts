/**
 * The demo's backends misbehaving: every backend answers /hello in 2 ms,
 * unless told to be slow (50 ms, 25×) or to fail (503 to everything); and
 * what each client made of it: latency percentiles, the misbehaving
 * backend's share, failed requests.
 */
import type { Handler } from '../../test/helpers/h2-server.js'
import type { Load } from '../../test/helpers/load.js'

export type Behaviour = 'ok' | 'slow' | 'failing'

/** How long a backend takes to answer (ms): healthy, and 25× slower. */
export const ANSWER_MS = 2
export const SLOW_MS = 50

/** The backends' behaviour, by address; answers every request of the fleet. */
export class Behaviours {
  readonly #by = new Map<string, Behaviour>()

  set(host: string, behaviour: Behaviour): void {
    this.#by.set(host, behaviour)
  }

  get(host: string): Behaviour {
    return this.#by.get(host) ?? 'ok'
  }

  readonly handler: Handler = (req, res, { backend }) => {
    if (req.url !== '/hello') return false
    const behaviour = this.get(backend)
    if (behaviour === 'failing') {
      res.writeHead(503)
      res.end('unavailable')
      return
    }
    setTimeout(() => res.end('hello'), behaviour === 'slow' ? SLOW_MS : ANSWER_MS)
  }
}

/** The `p`-th percentile (0–100) of ascending values; null without any. */
export function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

/** One client through the slow backend's scene. */
export interface SlowScene {
  /** Median and 99th percentile of the requests completed in the scene (ms). */
  p50: number | null
  p99: number | null
  /** The slow backend's share of them. */
  share: number
  requests: number
}

/** One client through the failing backend's scene. */
export interface FailingScene {
  requests: number
  failed: number
  /** From 2 s after the backend started failing to the end of the scene. */
  after2s: { requests: number; failed: number }
}

export function slowScene(load: Load, backend: string, from: number, to: number): SlowScene {
  const durations = load.durations(from, to)
  const window = load.window(from, to)
  const round = (value: number | null) => (value === null ? null : Math.round(value * 10) / 10)
  return {
    p50: round(percentile(durations, 50)),
    p99: round(percentile(durations, 99)),
    share: window.total === 0 ? 0 : (window.counts[backend] ?? 0) / window.total,
    requests: window.total,
  }
}

/** Requests and failures of one client while a backend failed every request: every request that reached it failed. */
export function failingScene(load: Load, from: number, to: number): FailingScene {
  const count = (start: number) => {
    const failed = load.failedIn(start, to)
    return { requests: load.window(start, to).total + failed, failed }
  }
  return { ...count(from), after2s: count(from + 2000) }
}

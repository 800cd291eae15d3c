/**
 * A bounded closed-loop load for chaos tests: `concurrency` workers send one
 * request after the other until `total` were sent, `maxDuration` passed, or
 * `stopWhen()` holds. Every request is raced against `perRequestLimit`, so a
 * request that never settles is counted as hung instead of hanging the test.
 */
import { DrainpipeError } from '../../../lib/index.js'

export interface Failure {
  index: number
  error: unknown
  /** ms since the load started. */
  at: number
}

export interface DriveReport {
  sent: number
  ok: number
  failed: number
  /** Requests that did not settle within `perRequestLimit`. */
  hung: number
  elapsed: number
  failures: Failure[]
  /** Failures by `name (code, unprocessed)`. */
  kinds: Record<string, number>
  /** What the `disrupt` actions threw (a test expects none). */
  disruptionErrors: unknown[]
  /** Latency percentiles of the successful requests (ms). */
  p50: number
  p99: number
  max: number
}

export interface DriveOptions {
  total: number
  concurrency: number
  /** Safety bound (ms): no new request after this. */
  maxDuration: number
  /** A request not settled after this long (ms) counts as hung. Default 15,000. */
  perRequestLimit?: number
  /** Stop sending new requests once this holds (checked before each request). */
  stopWhen?: () => boolean
  /** Called after each settled request with the number settled so far. */
  onSettled?: (settled: number) => void
  /**
   * A disruption (a reload, a graceful restart) after every `requests` settled, before the last:
   * one at a time, while the load keeps going. `drive` resolves once the last one is done.
   */
  disrupt?: { requests: number; action: () => Promise<void> }
  /** Sends request `index`; resolves when it fully succeeded, rejects when it failed. */
  send: (index: number) => Promise<void>
}

export function kindOf(error: unknown): string {
  if (error instanceof DrainpipeError) return `${error.name} (${error.code}, unprocessed ${error.unprocessed})`
  if (error instanceof Error) return `${error.name}: ${error.message} (not a DrainpipeError)`
  return `${String(error)} (not an Error)`
}

export async function drive(options: DriveOptions): Promise<DriveReport> {
  const limit = options.perRequestLimit ?? 15_000
  const started = performance.now()
  const latencies: number[] = []
  const failures: Failure[] = []
  let next = 0
  let hung = 0
  let settled = 0
  let disrupting: Promise<void> = Promise.resolve()
  const disruptionErrors: unknown[] = []
  const { disrupt } = options
  const worker = async () => {
    while (next < options.total && performance.now() - started < options.maxDuration && !options.stopWhen?.()) {
      const index = next++
      const sentAt = performance.now()
      let timer: NodeJS.Timeout | undefined
      const outcome = await Promise.race([
        options.send(index).then(
          () => 'ok' as const,
          (error: unknown) => ({ error }),
        ),
        new Promise<'hung'>((resolve) => {
          timer = setTimeout(() => resolve('hung'), limit)
        }),
      ])
      clearTimeout(timer)
      if (outcome === 'ok') latencies.push(performance.now() - sentAt)
      else if (outcome === 'hung') hung++
      else failures.push({ index, error: outcome.error, at: performance.now() - started })
      settled++
      options.onSettled?.(settled)
      if (disrupt && settled % disrupt.requests === 0 && settled < options.total) {
        disrupting = disrupting.then(disrupt.action).catch((error: unknown) => void disruptionErrors.push(error))
      }
    }
  }
  await Promise.all(Array.from({ length: options.concurrency }, worker))
  await disrupting
  latencies.sort((a, b) => a - b)
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * q))] ?? 0
  const kinds: Record<string, number> = {}
  for (const { error } of failures) kinds[kindOf(error)] = (kinds[kindOf(error)] ?? 0) + 1
  return {
    sent: next,
    ok: latencies.length,
    failed: failures.length,
    hung,
    elapsed: performance.now() - started,
    failures,
    kinds,
    disruptionErrors,
    p50: at(0.5),
    p99: at(0.99),
    max: latencies[latencies.length - 1] ?? 0,
  }
}

/** One line of figures for the test log. */
export function summary(name: string, report: DriveReport, extra: Record<string, unknown> = {}): string {
  const parts = [
    `${report.sent} sent`,
    `${report.ok} ok`,
    `${report.failed} failed`,
    `${report.hung} hung`,
    `${(report.elapsed / 1000).toFixed(1)} s`,
    `${Math.round((report.ok / report.elapsed) * 1000)} req/s`,
    `p50 ${report.p50.toFixed(1)} ms`,
    `p99 ${report.p99.toFixed(1)} ms`,
    ...Object.entries(extra).map(([key, value]) => `${key} ${typeof value === 'object' ? JSON.stringify(value) : String(value)}`),
  ]
  const kinds = Object.entries(report.kinds)
  return `[${name}] ${parts.join(', ')}${kinds.length ? `; failures: ${kinds.map(([k, n]) => `${n}× ${k}`).join('; ')}` : ''}`
}

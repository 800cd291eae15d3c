/**
 * What a simulation records, in fixed time buckets on the virtual clock:
 * per backend, requests completed, TLS handshakes accepted and open
 * connections (sampled at the end of each bucket); for the fleet, requests
 * that waited for a connection, failures, and what DNS answered when.
 * Typed arrays, one slot per bucket: recording is an increment.
 */

export interface BackendSeries {
  readonly address: string
  /** Requests answered, per bucket. */
  readonly completions: Uint32Array
  /** Connections accepted (each a TLS handshake the backend pays for), per bucket. */
  readonly handshakes: Uint32Array
  /** Open connections (draining ones included) at the end of each bucket. */
  readonly connections: Uint32Array
}

export class Metrics {
  /** Bucket width (virtual ms). */
  readonly bucket: number
  readonly length: number
  readonly backends: BackendSeries[] = []
  readonly #byAddress = new Map<string, BackendSeries>()
  /** Requests dispatched. */
  requests = 0
  /** Requests that found no connection to go to at once, after their client had one: they waited for a handshake. */
  waited = 0
  /** Requests that waited for their client's first connection. */
  coldStarts = 0
  readonly waitedPerBucket: Uint32Array
  /** The longest such wait (ms). */
  longestWait = 0
  failed = 0
  /** Failures by error code (or class name), for the report. */
  readonly failures = new Map<string, number>()
  /** What DNS answered from each moment on. */
  readonly dns: { readonly t: number; readonly addresses: readonly string[] }[] = []
  /** The scenario's changes, for reports and charts. */
  readonly events: { readonly t: number; readonly label: string }[] = []

  constructor(duration: number, bucket: number) {
    this.bucket = bucket
    this.length = Math.ceil(duration / bucket)
    this.waitedPerBucket = new Uint32Array(this.length)
  }

  /** The bucket of a virtual instant (a run's last instant falls in its last bucket). */
  index(t: number): number {
    return Math.min(this.length - 1, Math.floor(t / this.bucket))
  }

  backend(address: string): BackendSeries {
    let series = this.#byAddress.get(address)
    if (series === undefined) {
      series = {
        address,
        completions: new Uint32Array(this.length),
        handshakes: new Uint32Array(this.length),
        connections: new Uint32Array(this.length),
      }
      this.#byAddress.set(address, series)
      this.backends.push(series)
    }
    return series
  }

  failure(error: Error): void {
    this.failed++
    const key = (error as { code?: string }).code ?? error.name
    this.failures.set(key, (this.failures.get(key) ?? 0) + 1)
  }

  /** The addresses DNS answered at `t`. */
  inDns(t: number): readonly string[] {
    let current: readonly string[] = []
    for (const entry of this.dns) {
      if (entry.t > t) break
      current = entry.addresses
    }
    return current
  }
}

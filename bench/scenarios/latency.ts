/**
 * Open loop at a fixed rate (wrk2-style): request i is due at
 * t0 + i / rate and its latency runs from that due time, not from when it
 * was actually sent, so a stalled event loop (a TLS handshake, a GC pause)
 * shows up in the latency instead of silently lowering the rate
 * (coordinated omission). Recorded in microseconds in an HdrHistogram.
 */
import * as hdr from 'hdr-histogram-js'
import { makeClient } from '../clients.js'
import { PATHS, sleep, type LatencyResult, type Target, type Task } from '../common.js'

export async function latency(task: Extract<Task, { kind: 'latency' }>, target: Target): Promise<LatencyResult> {
  const recycling = task.recycleMs !== undefined
  const client = await makeClient(
    task.client,
    target,
    recycling ? { maxConnectionAge: task.recycleMs, maxConnectionAgeJitter: 0 } : {},
  )
  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 })
  let errors = 0
  let firstError: string | undefined
  let recording = false
  let sentInWindow = 0
  const inFlight = new Set<Promise<void>>()

  const fire = (due: number) => {
    const record = recording
    if (record) sentInWindow++
    const promise = client.send('GET', PATHS.small, undefined, false).then(
      () => {
        if (record) histogram.recordValue(Math.max(1, Math.round((performance.now() - due) * 1000)))
      },
      (error: unknown) => {
        errors++
        firstError ??= String((error as Error)?.stack ?? error)
      },
    )
    inFlight.add(promise)
    void promise.finally(() => inFlight.delete(promise))
  }

  await client.send('GET', PATHS.small, undefined, false)
  const interval = 1000 / task.rate
  const t0 = performance.now()
  let sent = 0
  let stop = false
  const recyclesAtStart = () => client.drainpipe?.stats().recycles.ok ?? 0
  let recyclesBefore = 0
  const tick = () => {
    if (stop) return
    const now = performance.now()
    while (t0 + sent * interval <= now) {
      fire(t0 + sent * interval)
      sent++
    }
    setTimeout(tick, 1)
  }
  tick()
  await sleep(task.warmupMs)
  recyclesBefore = recyclesAtStart()
  recording = true
  const windowStart = performance.now()
  await sleep(task.durationMs)
  recording = false
  const windowMs = performance.now() - windowStart
  stop = true
  const recycles = recyclesAtStart() - recyclesBefore
  await Promise.race([Promise.all(inFlight), sleep(10_000)])
  await Promise.race([client.close(), sleep(5_000)])
  const result: LatencyResult = {
    kind: 'latency',
    client: task.client,
    recycleMs: task.recycleMs,
    rate: task.rate,
    p50: histogram.getValueAtPercentile(50),
    p99: histogram.getValueAtPercentile(99),
    p999: histogram.getValueAtPercentile(99.9),
    max: histogram.maxValue,
    count: histogram.totalCount,
    achievedRate: (sentInWindow * 1000) / windowMs,
    recycles,
    errors,
    ...(firstError === undefined ? {} : { firstError }),
  }
  histogram.destroy()
  return result
}

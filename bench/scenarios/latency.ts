/**
 * Open loop at a fixed rate (wrk2-style): request i is due at
 * t0 + i / rate and its latency runs from that due time, not from when it
 * was actually sent, so a stalled event loop (a TLS handshake, a GC pause)
 * shows up in the latency instead of silently lowering the rate
 * (coordinated omission). Recorded in microseconds in an HdrHistogram.
 *
 * Before the open loop, 4,000 requests in a closed loop warm the JIT; the
 * open loop's own warm-up then covers the first recycles.
 *
 * With recycling, the run also splits its own requests into those in
 * flight while a recycle was under way (successor connecting, predecessor
 * draining, until it closed) and the rest: a comparison within one run,
 * under the same load from the rest of the machine.
 */
import diagnostics from 'node:diagnostics_channel'
import * as hdr from 'hdr-histogram-js'
import { makeClient } from '../clients.js'
import { profileWindow } from '../profiler.js'
import { PATHS, rowName, sleep, type LatencyResult, type Split, type Target, type Task } from '../common.js'

export async function latency(task: Extract<Task, { kind: 'latency' }>, target: Target): Promise<LatencyResult> {
  const recycling = task.recycleMs !== undefined
  const client = await makeClient(task.client, target, {
    engine: task.engine,
    ...(recycling ? { maxConnectionAge: task.recycleMs, maxConnectionAgeJitter: 0 } : {}),
  })
  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 })
  let errors = 0
  let firstError: string | undefined
  let recording = false
  const inFlight = new Set<Promise<void>>()
  // Requests of the window as [due, end] (ms), and recycles as [successor connect start, predecessor closed].
  const spans: number[] = []
  const recycleSpans: [number, number][] = []
  const connectStart = new Map<number, number>()
  const closing = new Map<number, number>()
  const onConnect = (message: unknown) => {
    const { id, connectDuration } = message as { id: number; connectDuration: number }
    connectStart.set(id, performance.now() - connectDuration)
  }
  const onRecycle = (message: unknown) => {
    const { id, result, successor } = message as { id: number; result: string; successor?: number }
    const start = successor === undefined ? undefined : connectStart.get(successor)
    if (result === 'ok' && start !== undefined) closing.set(id, start)
  }
  const onClose = (message: unknown) => {
    const { id } = message as { id: number }
    const start = closing.get(id)
    if (start === undefined) return
    closing.delete(id)
    recycleSpans.push([start, performance.now()])
  }
  if (recycling) {
    diagnostics.subscribe('drainpipe:pool:connect', onConnect)
    diagnostics.subscribe('drainpipe:pool:recycle', onRecycle)
    diagnostics.subscribe('drainpipe:pool:close', onClose)
  }

  const fire = (due: number) => {
    const record = recording
    const promise = client.send('GET', PATHS.small, undefined, false).then(
      () => {
        if (record) {
          const end = performance.now()
          histogram.recordValue(Math.max(1, Math.round((end - due) * 1000)))
          if (recycling) spans.push(due, end)
        }
      },
      (error: unknown) => {
        errors++
        firstError ??= String((error as Error)?.stack ?? error)
      },
    )
    inFlight.add(promise)
    void promise.finally(() => inFlight.delete(promise))
  }

  // JIT warm-up, closed loop: started cold, the open loop falls behind for
  // its first seconds and the backlog it builds takes seconds to drain.
  let warmupRequests = 4000
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (warmupRequests-- > 0) await client.send('GET', PATHS.small, undefined, false)
    }),
  )
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
  const profiler = await profileWindow(task.profileDir, `latency-${rowName(task.client, task.engine)}${recycling ? '-recycling' : ''}`)
  recording = true
  await sleep(task.durationMs)
  recording = false
  await profiler.stop()
  stop = true
  const recycles = recyclesAtStart() - recyclesBefore
  await Promise.race([Promise.all(inFlight), sleep(10_000)])
  await Promise.race([client.close(), sleep(5_000)])
  if (recycling) {
    diagnostics.unsubscribe('drainpipe:pool:connect', onConnect)
    diagnostics.unsubscribe('drainpipe:pool:recycle', onRecycle)
    diagnostics.unsubscribe('drainpipe:pool:close', onClose)
  }
  const split = recycling ? splitByRecycle(spans, recycleSpans) : undefined
  const result: LatencyResult = {
    kind: 'latency',
    client: task.client,
    engine: task.engine,
    recycleMs: task.recycleMs,
    rate: task.rate,
    p50: histogram.getValueAtPercentile(50),
    p99: histogram.getValueAtPercentile(99),
    p999: histogram.getValueAtPercentile(99.9),
    max: histogram.maxValue,
    count: histogram.totalCount,
    recycles,
    ...(split ? { duringRecycle: split.during, outsideRecycle: split.outside } : {}),
    errors,
    ...(firstError === undefined ? {} : { firstError }),
  }
  histogram.destroy()
  return result
}

/** p99 of the requests that overlapped a recycle, and of the others (µs). */
function splitByRecycle(spans: number[], recycles: [number, number][]): { during: Split; outside: Split } {
  const during: number[] = []
  const outside: number[] = []
  for (let i = 0; i < spans.length; i += 2) {
    const due = spans[i]!
    const end = spans[i + 1]!
    const overlaps = recycles.some(([start, stop]) => due <= stop && end >= start)
    ;(overlaps ? during : outside).push((end - due) * 1000)
  }
  return { during: summary(during), outside: summary(outside) }
}

function summary(values: number[]): Split {
  const sorted = values.sort((a, b) => a - b)
  const at = (q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : NaN)
  return { count: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted.length ? sorted[sorted.length - 1]! : NaN }
}

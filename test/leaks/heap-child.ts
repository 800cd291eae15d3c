/**
 * Child process of test/leaks.test.ts, run as
 *   node --expose-gc --import tsx test/leaks/heap-child.ts <origin> <address> <recycles>
 *
 * Drives a client through `recycles` planned recycles (every connection is
 * replaced after one request: maxRequestsPerConnection 1) against an h2c
 * server the parent runs, and measures the heap (after full GCs) once warm
 * and again after the recycles. Prints one JSON line on stdout.
 */
import { setImmediate as tick } from 'node:timers/promises'
import { Client } from '../../lib/index.js'

const [origin, address, target] = [process.argv[2]!, process.argv[3]!, Number(process.argv[4] ?? 10_000)]
const gc = (globalThis as { gc?: () => void }).gc
if (!gc) throw new Error('run with --expose-gc')

async function settledHeap(): Promise<number> {
  for (let i = 0; i < 4; i++) {
    gc!()
    await tick()
  }
  return process.memoryUsage().heapUsed
}

const client = new Client({
  h2c: true,
  count: 16,
  maxRequestsPerConnection: 1,
  lookup: (_host, _options, callback) => callback(null, [{ address, family: 4 }]),
})

/** Requests until `recycles` more recycles completed (bounded by time). */
async function recycle(recycles: number, limit: number): Promise<number> {
  const goal = client.stats().recycles.ok + recycles
  const deadline = Date.now() + limit
  let requests = 0
  const worker = async () => {
    while (client.stats().recycles.ok < goal && Date.now() < deadline) {
      const res = await client.request(`${origin}/hello`)
      await res.body.text()
      requests++
    }
  }
  await Promise.all(Array.from({ length: 16 }, worker))
  return requests
}

const started = Date.now()
await recycle(1000, 20_000) // warm: JIT, pools of buffers, diagnostics
const before = await settledHeap()
const recyclesBefore = client.stats().recycles.ok
const requests = await recycle(target, 60_000)
const recycles = client.stats().recycles.ok - recyclesBefore
const after = await settledHeap()
const stats = client.stats()
const livePools = Object.values(stats.origins).reduce((n, o) => n + o.pools.length, 0)
await client.close()
await tick()
console.log(
  JSON.stringify({
    recycles,
    requests,
    failedRecycles: stats.recycles.failed,
    heapBefore: before,
    heapAfter: after,
    delta: after - before,
    perRecycle: (after - before) / recycles,
    livePools,
    elapsed: Date.now() - started,
  }),
)

/**
 * Soak: `npm run soak` (full) or `npm run soak -- --quick` (CI).
 *
 * Mixed GET/POST load through one drainpipe Client against several HTTP/2
 * backends (their own process, bench/soak-backends.ts), with a short
 * `maxConnectionAge` so connections are recycled all the time. Each POST
 * carries an id the backends record. At the end it reports, and fails
 * (exit 1) on any of:
 *   - lost: a request that never settled, or a POST that succeeded but no
 *     backend processed;
 *   - failed: a request that rejected (planned recycles must fail nothing);
 *   - duplicated: a POST id processed more than once;
 *   - heap growth beyond the bound (heap after vs before, after full GCs).
 *
 * Bounded: it stops issuing requests at the deadline, waits a grace period
 * for those in flight, and exits by itself.
 *
 * --quick: 5,000 requests with maxConnectionAge 250 ms (CI, a few seconds); full: 100,000 with 1 s.
 *
 * Flags: --quick, --requests N, --concurrency N, --age MS, --backends N,
 *        --count N (pools per origin), --max-duration MS.
 */
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { Client, DrainpipeError } from '../lib/index.js'
import { pki } from '../test/helpers/pki.js'
import { settledMemory } from './heap.js'

interface Settings {
  requests: number
  concurrency: number
  age: number
  backends: number
  count: number
  maxDuration: number
  /** Heap growth (bytes) above which the run fails. */
  heapBound: number
}

function settings(argv: string[]): Settings {
  const quick = argv.includes('--quick')
  const base: Settings = quick
    ? { requests: 5000, concurrency: 200, age: 250, backends: 3, count: 3, maxDuration: 25_000, heapBound: 16 * 1024 * 1024 }
    : { requests: 100_000, concurrency: 200, age: 1000, backends: 3, count: 3, maxDuration: 8 * 60_000, heapBound: 16 * 1024 * 1024 }
  const number = (flag: string): number | undefined => {
    const at = argv.indexOf(flag)
    if (at === -1) return undefined
    const value = Number(argv[at + 1])
    if (!Number.isFinite(value) || value < 0) throw new Error(`${flag} needs a non-negative number`)
    return value
  }
  return {
    requests: number('--requests') ?? base.requests,
    concurrency: number('--concurrency') ?? base.concurrency,
    age: number('--age') ?? base.age,
    backends: number('--backends') ?? base.backends,
    count: number('--count') ?? base.count,
    maxDuration: number('--max-duration') ?? base.maxDuration,
    heapBound: base.heapBound,
  }
}

/** heapUsed after forced GCs: the bench's reading (heap.ts). */
const heapAfterGc = async () => (await settledMemory()).heapUsed

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`

async function main(): Promise<number> {
  const config = settings(process.argv.slice(2))
  const started = performance.now()

  // ── Servers in their own process ────────────────────────────────────────
  const child = fork(fileURLToPath(new URL('./soak-backends.ts', import.meta.url)), [String(config.backends), '111'], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const killChild = () => child.kill('SIGKILL')
  process.once('exit', killChild)
  const next = (type: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const onMessage = (message: Record<string, unknown>) => {
        if (message.type !== type) return
        child.off('message', onMessage)
        child.off('exit', onExit)
        resolve(message)
      }
      const onExit = (code: number | null) => reject(new Error(`soak backends exited (${code}) before '${type}'`))
      child.on('message', onMessage)
      child.once('exit', onExit)
    })
  const ready = (await next('ready')) as { hosts: string[]; port: number }

  const client = new Client({
    connect: { ca: pki.ca },
    lookup: (_hostname, _options, callback) => callback(null, ready.hosts.map((address) => ({ address, family: 4 }))),
    count: config.count,
    maxConnectionAge: config.age,
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  })
  const base = `https://api.test:${ready.port}`

  // ── The load ────────────────────────────────────────────────────────────
  const succeededPosts = new Set<string>()
  const failures = new Map<string, number>()
  let failed = 0
  let ok = 0
  let issued = 0
  let inFlight = 0
  let heapBefore = 0
  const warmup = Math.min(2000, Math.floor(config.requests / 10))
  const deadline = started + config.maxDuration
  const latencies: number[] = []

  const one = async (index: number): Promise<void> => {
    const kind = index % 10
    const t0 = performance.now()
    if (kind < 5) {
      const id = `soak-${index}`
      const res = await client.request(`${base}/record?id=${id}`, { method: 'POST', body: id })
      const body = await res.body.text()
      if (res.statusCode !== 200 || body !== id) throw new Error(`POST ${id}: ${res.statusCode} ${body.slice(0, 40)}`)
      succeededPosts.add(id)
    } else if (kind < 9) {
      const res = await client.request(`${base}/hello`)
      const body = await res.body.text()
      if (res.statusCode !== 200 || body !== 'hello') throw new Error(`GET /hello: ${res.statusCode}`)
    } else {
      const res = await client.request(`${base}/bytes?size=16384`)
      const body = await res.body.arrayBuffer()
      if (res.statusCode !== 200 || body.byteLength !== 16384) throw new Error(`GET /bytes: ${res.statusCode} ${body.byteLength}`)
    }
    latencies.push(performance.now() - t0)
  }

  let progressAt = performance.now()
  const worker = async () => {
    while (issued < config.requests && performance.now() < deadline) {
      const index = issued++
      inFlight++
      try {
        await one(index)
        ok++
      } catch (error) {
        failed++
        const kind = error instanceof DrainpipeError ? `${error.name} (${error.code}, unprocessed ${error.unprocessed})` : `${(error as Error).name}: ${(error as Error).message}`
        failures.set(kind, (failures.get(kind) ?? 0) + 1)
      } finally {
        inFlight--
      }
      if (ok + failed === warmup) heapBefore = await heapAfterGc()
      if (performance.now() - progressAt > 5000) {
        progressAt = performance.now()
        const s = client.stats()
        console.log(
          `  ${ok + failed}/${config.requests} settled, ${failed} failed, ${s.recycles.ok} recycles, ${((performance.now() - started) / 1000).toFixed(0)} s`,
        )
      }
    }
  }
  console.log(
    `soak: ${config.requests} requests (50% POST with ids, 40% GET, 10% 16 KB GET), concurrency ${config.concurrency}, ` +
      `maxConnectionAge ${config.age} ms, ${config.backends} backends, ${config.count} pools`,
  )
  const workers = Promise.all(Array.from({ length: config.concurrency }, worker))
  // Bounded even if requests hang: after the deadline, a grace period, then whatever is in flight is lost.
  const grace = new Promise<'timeout'>((resolve) => {
    const check = setInterval(() => {
      if (performance.now() > deadline + 30_000) {
        clearInterval(check)
        resolve('timeout')
      }
    }, 250)
    void workers.then(() => clearInterval(check))
  })
  const ended = await Promise.race([workers.then(() => 'done' as const), grace])
  const unsettled = ended === 'timeout' ? inFlight : 0
  const elapsed = performance.now() - started
  const stats = client.stats()
  const heapAfter = await heapAfterGc()

  await Promise.race([client.close(), new Promise((resolve) => setTimeout(resolve, 10_000))])
  await client.destroy()
  const heapClosed = await heapAfterGc()

  // ── What the servers saw ────────────────────────────────────────────────
  child.send({ type: 'report' })
  const report = (await next('report')) as { processed: [string, number][]; requests: number[]; connections: number[] }
  const processed = new Map(report.processed)
  const lostPosts = [...succeededPosts].filter((id) => !processed.has(id))
  const duplicated = [...processed].filter(([, times]) => times > 1)
  child.send({ type: 'close' })
  await once(child, 'exit')
  process.removeListener('exit', killChild)

  latencies.sort((a, b) => a - b)
  const at = (q: number) => (latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * q))] ?? 0).toFixed(1)
  const lost = unsettled + lostPosts.length
  const growth = heapAfter - heapBefore
  const result = {
    requests: issued,
    ok,
    failed,
    lost,
    unsettled,
    lostPosts: lostPosts.length,
    duplicatedPosts: duplicated.length,
    postsSucceeded: succeededPosts.size,
    recycles: stats.recycles,
    retries: stats.retries,
    goaways: stats.goaways,
    connectionsPerBackend: report.connections,
    requestsPerBackend: report.requests,
    seconds: Number((elapsed / 1000).toFixed(1)),
    perSecond: Math.round((ok / elapsed) * 1000),
    latencyMs: { p50: Number(at(0.5)), p99: Number(at(0.99)), max: Number(at(1)) },
    heap: { before: heapBefore, after: heapAfter, afterClose: heapClosed, growth },
    failures: Object.fromEntries(failures),
  }
  console.log(
    [
      `requests      ${issued} issued, ${ok} ok, ${failed} failed, ${lost} lost (${unsettled} unsettled, ${lostPosts.length} POSTs never processed)`,
      `POSTs         ${succeededPosts.size} succeeded, ${duplicated.length} processed more than once`,
      `recycles      ${stats.recycles.ok} ok, ${stats.recycles.failed} failed; retries ${stats.retries}; GOAWAYs ${stats.goaways}`,
      `backends      connections ${report.connections.join('/')}, requests ${report.requests.join('/')}`,
      `time          ${result.seconds} s, ${result.perSecond} req/s, p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${at(1)} ms`,
      `heap          ${mb(heapBefore)} after warm-up → ${mb(heapAfter)} at the end (${growth >= 0 ? '+' : ''}${mb(growth)}), ${mb(heapClosed)} after close`,
      ...(failures.size ? [`failures      ${[...failures].map(([k, n]) => `${n}× ${k}`).join('; ')}`] : []),
    ].join('\n'),
  )
  console.log(JSON.stringify(result))
  const problems = [
    lost > 0 && `${lost} lost`,
    failed > 0 && `${failed} failed`,
    duplicated.length > 0 && `${duplicated.length} duplicated POSTs`,
    growth > config.heapBound && `heap grew by ${mb(growth)} (bound ${mb(config.heapBound)})`,
    issued < config.requests && `only ${issued} of ${config.requests} requests issued within ${config.maxDuration} ms`,
  ].filter(Boolean)
  if (problems.length > 0) {
    console.log(`SOAK FAILED: ${problems.join(', ')}`)
    return 1
  }
  console.log('SOAK PASSED')
  return 0
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error('soak crashed:', error)
    process.exit(2)
  },
)

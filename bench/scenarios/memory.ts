/**
 * Memory, read after forced full GCs (heap.ts):
 *
 * - recycles: drainpipe with a tiny maxConnectionAge (jitter 0) and a
 *   trickle of requests always in flight, so every age expiry is a real
 *   recycle (successor connect, drain, GOAWAY, close). heapUsed after a
 *   warm-up is compared with heapUsed after N more recycles, both after
 *   full GCs. The reference is raw node:http2 doing the same number of
 *   connect → request → close cycles: what Node itself keeps or fragments.
 *   test/leaks.test.ts runs this task too (through the bench's child, on an
 *   h2c origin), with a test-sized count.
 * - idle-origins: one request each to N distinct origins (oN.test, all
 *   mapped to 127.0.0.1 by `lookup`), connections left open and idle; heap
 *   and RSS per origin. Measured for drainpipe and, as references, undici's
 *   Agent (H2) and a bare node:http2 session per origin.
 *
 * Node's checkServerIdentity never lets a wildcard with only two labels
 * (`*.test`) match, so the chain is verified against the test CA as usual
 * but the name is checked as `api.test`, which the certificate names.
 */
import { once } from 'node:events'
import http2 from 'node:http2'
import tls from 'node:tls'
import { readFileSync } from 'node:fs'
import type { LookupAddress } from 'node:dns'
import * as undici from 'undici'
import { drainpipeClient } from '../clients.js'
import { PATHS, sleep, type IdleOriginsResult, type RecyclesResult, type Target, type Task } from '../common.js'
import { settledMemory } from '../heap.js'
import { connectionsTo } from './throughput.js'

interface Churn {
  /** Recycles (or connection cycles) so far. */
  count(): number
  /** One request of the trickle. */
  request(): Promise<void>
  failedRecycles(): number
  close(): Promise<void>
}

function drainpipeChurn(task: Extract<Task, { kind: 'recycles' }>, target: Target): Churn {
  const client = drainpipeClient(target, { engine: task.engine, maxConnectionAge: task.ageMs, maxConnectionAgeJitter: 0 })
  const url = `${target.origin}${PATHS.small}`
  return {
    count: () => client.stats().recycles.ok,
    async request() {
      const res = await client.request(url)
      await res.body.text()
    },
    failedRecycles: () => client.stats().recycles.failed,
    close: () => client.close(),
  }
}

function rawChurn(target: Target): Churn {
  const ca = readFileSync(target.caPath)
  let cycles = 0
  return {
    count: () => cycles,
    async request() {
      const session = http2.connect(target.origin, { ca })
      session.on('error', () => {})
      await once(session, 'remoteSettings')
      const stream = session.request({ ':path': PATHS.small })
      stream.resume()
      await once(stream, 'end')
      await new Promise<void>((resolve) => session.close(resolve))
      cycles++
    },
    failedRecycles: () => 0,
    close: async () => {},
  }
}

export async function recycles(task: Extract<Task, { kind: 'recycles' }>, target: Target): Promise<RecyclesResult> {
  const churn = task.client === 'drainpipe' ? drainpipeChurn(task, target) : rawChurn(target)
  let requests = 0
  let errors = 0
  let firstError: string | undefined
  let stop = false
  const trickle = async () => {
    while (!stop) {
      try {
        await churn.request()
        requests++
      } catch (error) {
        errors++
        firstError ??= String((error as Error)?.stack ?? error)
        await sleep(1)
      }
    }
  }
  const until = async (count: number) => {
    const deadline = Date.now() + 600_000
    while (churn.count() < count && Date.now() < deadline && errors < 1000) await sleep(5)
  }
  const loops = (n: number) => Array.from({ length: n }, trickle)
  let running = loops(task.trickle)
  await until(task.warmupRecycles)
  stop = true
  await Promise.all(running)
  await sleep(100)
  const before = await settledMemory()
  const startCount = churn.count()
  const started = performance.now()
  stop = false
  running = loops(task.trickle)
  await until(startCount + task.recycles)
  stop = true
  await Promise.all(running)
  const elapsedMs = performance.now() - started
  const done = churn.count() - startCount
  // Let the last drained connection close before measuring.
  await sleep(100)
  const after = await settledMemory()
  const failed = churn.failedRecycles()
  await Promise.race([churn.close(), sleep(5_000)])
  return {
    kind: 'recycles',
    client: task.client,
    engine: task.engine,
    recycles: done,
    failed,
    elapsedMs,
    requests,
    heapBefore: before.heapUsed,
    heapAfter: after.heapUsed,
    rssBefore: before.rss,
    rssAfter: after.rss,
    errors,
    ...(firstError === undefined ? {} : { firstError }),
  }
}

const lookup = (
  _hostname: string,
  options: { all?: boolean } | number | undefined,
  callback: (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
) => {
  if (typeof options === 'object' && options?.all) callback(null, [{ address: '127.0.0.1', family: 4 }])
  else callback(null, '127.0.0.1', 4)
}

const checkServerIdentity = (_host: string, cert: tls.PeerCertificate) => tls.checkServerIdentity('api.test', cert)

interface OriginClient {
  get(origin: string): Promise<void>
  close(): Promise<void>
}

function originClient(task: Extract<Task, { kind: 'idle-origins' }>, target: Target): OriginClient {
  const ca = readFileSync(target.caPath)
  switch (task.client) {
    case 'drainpipe': {
      const client = drainpipeClient(target, { engine: task.engine, lookup: lookup as never, connect: { ca, checkServerIdentity } })
      return {
        async get(origin) {
          const res = await client.request(`${origin}${PATHS.small}`)
          await res.body.text()
          if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`)
        },
        close: () => client.close(),
      }
    }
    case 'undici Agent H2': {
      const agent = new undici.Agent({ allowH2: true, connect: { ca, lookup: lookup as never, checkServerIdentity } })
      return {
        async get(origin) {
          const res = await agent.request({ origin, path: PATHS.small, method: 'GET' })
          await res.body.text()
          if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`)
        },
        close: () => agent.close(),
      }
    }
    case 'node:http2 (raw)': {
      const sessions = new Map<string, http2.ClientHttp2Session>()
      return {
        get(origin) {
          let session = sessions.get(origin)
          if (session === undefined) {
            session = http2.connect(origin, { ca, lookup: lookup as never, checkServerIdentity })
            session.on('error', () => {})
            sessions.set(origin, session)
          }
          const stream = session.request({ ':path': PATHS.small })
          stream.resume()
          return new Promise<void>((resolve, reject) => {
            stream.on('end', resolve)
            stream.on('error', reject)
          })
        },
        async close() {
          await Promise.all([...sessions.values()].map((session) => new Promise<void>((resolve) => session.close(resolve))))
        },
      }
    }
  }
}

export async function idleOrigins(task: Extract<Task, { kind: 'idle-origins' }>, target: Target): Promise<IdleOriginsResult> {
  const client = originClient(task, target)
  const origin = (i: number) => `https://o${i}.test:${target.port}`
  // Warm: a few origins, so modules, TLS contexts and JIT are in the baseline.
  for (let i = 0; i < 3; i++) await client.get(origin(100_000 + i))
  const before = await settledMemory()
  let errors = 0
  let firstError: string | undefined
  let next = 0
  const started = performance.now()
  const worker = async () => {
    while (next < task.origins) {
      const i = next++
      try {
        await client.get(origin(i))
      } catch (error) {
        errors++
        firstError ??= String((error as Error)?.stack ?? error)
      }
    }
  }
  await Promise.all(Array.from({ length: 20 }, worker))
  const elapsedMs = performance.now() - started
  await sleep(100)
  const after = await settledMemory()
  const connections = connectionsTo(target.port)
  await Promise.race([client.close(), sleep(10_000)])
  return {
    kind: 'idle-origins',
    client: task.client,
    engine: task.engine,
    origins: task.origins,
    heapBefore: before.heapUsed,
    heapAfter: after.heapUsed,
    rssBefore: before.rss,
    rssAfter: after.rss,
    connections,
    elapsedMs,
    errors,
    ...(firstError === undefined ? {} : { firstError }),
  }
}

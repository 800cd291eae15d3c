/**
 * The interop gate's workload: 1,000 mixed requests through one `Client`
 * against a real server, while the test drives the server's GOAWAY path, and
 * the figures and checks every server's case shares.
 *
 * Request `i` (deterministic, so a failure names what it was):
 * - odd: a POST carrying its own id, which the server records or echoes
 *   (exactly-once is proved where it records);
 * - i % 10 = 0: a GET of a large body (256 KiB), checked byte for byte;
 * - i % 10 = 4: a GET whose response ends with trailers, where the server
 *   can send them (a small GET elsewhere);
 * - the rest: a small GET.
 *
 * Every request carries `x-interop-id: r<i>` for the engine tap (tap.ts).
 */
import { expect } from 'vitest'
import type { Client } from '../../../lib/index.js'
import { drive, kindOf, summary, type DriveOptions, type DriveReport } from '../../chaos/helpers/drive.js'
import { exactlyOnce } from '../../chaos/helpers/recorder.js'
import { pattern } from '../../helpers/h2-server.js'
import { ENGINE, INTEROP_ID, provedUnprocessed, type Tap, type Verdict } from './tap.js'

export const TOTAL = 1000
const CONCURRENCY = 20
export const BIG = 256 * 1024

export interface Routes {
  /** Answered 200 "hello". */
  hello: string
  /** Answered 200 with pattern(BIG). */
  big: string
  /** Where POST `id` goes, with what body, and the body its answer must have. */
  post(id: string): { path: string; body: string | Buffer; answer: string | Buffer }
  /** Answered 200 with `body`, then the trailer `x-checksum: abc`; absent where the server cannot send trailers. */
  trailers?: { path: string; body: string }
}

/**
 * The routes of test/chaos/helpers/recorder.ts (behind a proxy) and of
 * test/helpers/h2-server.ts, which answer alike; `trailers` where the server
 * in front passes the upstream's trailers on.
 */
export function recorderRoutes(options: { trailers: boolean }): Routes {
  return {
    hello: '/hello',
    big: `/bytes?size=${BIG}`,
    post: (id) => ({ path: `/record?id=${id}`, body: id, answer: id }),
    trailers: options.trailers ? { path: '/trailers', body: 'with trailers' } : undefined,
  }
}

/** A workload for run(): request `index`, and the ids of the POSTs that succeeded (for exactlyOnce()). */
export interface Mix {
  send(index: number): Promise<void>
  readonly posted: Set<string>
}

const bigBody = pattern(BIG)

/** The mixed requests against `base` (`https://api.test:port`). */
export function mix(client: Client, base: string, routes: Routes): Mix {
  const posted = new Set<string>()
  const get = async (index: number, path: string) => {
    const res = await client.request(`${base}${path}`, { headers: { [INTEROP_ID]: `r${index}` } })
    return { res, body: Buffer.from(await res.body.arrayBuffer()) }
  }
  const send = async (index: number) => {
    if (index % 2 === 1) {
      const id = `p${index}`
      const { path, body, answer } = routes.post(id)
      const res = await client.request(`${base}${path}`, { method: 'POST', body, headers: { [INTEROP_ID]: `r${index}` } })
      const got = Buffer.from(await res.body.arrayBuffer())
      if (res.statusCode !== 200 || !got.equals(Buffer.from(answer))) throw new Error(`POST ${path}: ${res.statusCode}, ${got.length} bytes`)
      posted.add(id)
    } else if (index % 10 === 0) {
      const { res, body } = await get(index, routes.big)
      if (res.statusCode !== 200 || !body.equals(bigBody)) throw new Error(`GET ${routes.big}: ${res.statusCode}, ${body.length} bytes not the pattern`)
    } else if (index % 10 === 4 && routes.trailers) {
      const { path, body: expected } = routes.trailers
      const { res, body } = await get(index, path)
      if (res.statusCode !== 200 || body.toString() !== expected || res.trailers['x-checksum'] !== 'abc') {
        throw new Error(`GET ${path}: ${res.statusCode} ${JSON.stringify(body.toString())}, trailers ${JSON.stringify(res.trailers)}`)
      }
    } else {
      const { res, body } = await get(index, routes.hello)
      if (res.statusCode !== 200 || body.toString() !== 'hello') throw new Error(`GET ${routes.hello}: ${res.statusCode} ${JSON.stringify(body.toString())}`)
    }
  }
  return { send, posted }
}

export interface Outcome {
  report: DriveReport
  /** The failed requests by what the server's GOAWAYs say of them (tap.ts). */
  verdicts: Partial<Record<Verdict | 'no stream', number>>
  /** Failed requests the server's GOAWAYs prove it did not process: each is a bug. */
  failedUnprocessed: number[]
  /** POSTs lost (succeeded, never processed) and processed twice, where the server records them. */
  lost: string[]
  duplicated: string[]
  /** Whether the server recorded POST ids (else it echoed them, and lost/duplicated are not known). */
  recorded: boolean
}

/**
 * Runs the workload; `onSettled` or `disrupt` (see drive.ts) is where the test
 * drives the server's GOAWAY path. `processed` is the server's record of POST
 * ids, if it keeps one.
 */
export async function run(options: {
  mix: Mix
  tap: Tap
  onSettled?: (settled: number) => void
  disrupt?: DriveOptions['disrupt']
  processed?: Map<string, number>
}): Promise<Outcome> {
  const report = await drive({
    total: TOTAL,
    concurrency: CONCURRENCY,
    maxDuration: 40_000,
    onSettled: options.onSettled,
    disrupt: options.disrupt,
    send: options.mix.send,
  })
  const verdicts: Outcome['verdicts'] = {}
  const failedUnprocessed: number[] = []
  for (const { index } of report.failures) {
    const verdict = options.tap.verdict(`r${index}`)
    verdicts[verdict ?? 'no stream'] = (verdicts[verdict ?? 'no stream'] ?? 0) + 1
    if (provedUnprocessed(verdict)) failedUnprocessed.push(index)
  }
  const { lost, duplicated } = options.processed ? exactlyOnce(options.mix.posted, options.processed) : { lost: [], duplicated: [] }
  return { report, verdicts, failedUnprocessed, lost, duplicated, recorded: options.processed !== undefined }
}

/** The one-line summary the README quotes. */
export function line(name: string, client: Client, outcome: Outcome, extra: Record<string, unknown> = {}): string {
  const stats = client.stats()
  return summary(`interop ${name}, ${ENGINE} engine`, outcome.report, {
    goaways: stats.goaways,
    retries: stats.retries,
    ...(outcome.recorded ? { 'POSTs lost': outcome.lost.length, 'POSTs duplicated': outcome.duplicated.length } : { POSTs: 'echoed' }),
    'failed though proved unprocessed': outcome.failedUnprocessed.length,
    ...extra,
  })
}

/** The gate every server but Apache passes on both engines: everything succeeded, nothing twice. */
export function expectClean(outcome: Outcome): void {
  const { report } = outcome
  if (report.failed > 0) console.log(report.failures.slice(0, 3).map((failure) => ({ index: failure.index, kind: kindOf(failure.error), error: failure.error })))
  expect(report.sent).toBe(TOTAL)
  expect(report.hung).toBe(0)
  expect(report.kinds).toEqual({})
  expect(outcome.lost).toEqual([])
  expect(outcome.duplicated).toEqual([])
}

/**
 * The wire engine under recorded sessions, split and damaged (fast-check).
 *
 * Sessions: what node:http2, nghttpd and h2o sent in a few realistic
 * exchanges (test/wire/sessions/: several requests, bodies with flow
 * control, trailers, padding, 1xx, 204/304/HEAD, a SETTINGS change, PINGs,
 * resets, GOAWAY). Each property replays them:
 *
 * - split anywhere into socket reads, with turns of the event loop between
 *   some of them, writes blocked or not, streams paused: every request ends
 *   exactly as it did when recorded;
 * - damaged (frames dropped, duplicated, moved, header fields set to values
 *   that matter, bits flipped, octets inserted or deleted): nothing escapes
 *   (no throw out of a socket event or a later tick), every error is a
 *   DrainpipeError, every stream hears exactly one of end or closed, the
 *   connection reports closed() once and leaves no socket or timer;
 * - through `Client` against a raw-frame server replaying damaged sessions:
 *   every request settles exactly once, in time, resolved or with a
 *   DrainpipeError, and nothing is left open after destroy().
 *
 * Seeds as in test/fuzz.test.ts: printed, `FC_SEED=<seed>` replays a run,
 * `FC_RUNS=<n>` raises the number of runs (the default keeps this file to
 * seconds).
 */
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { realClock, type Clock } from '../../lib/clock.js'
import { Client, DrainpipeError } from '../../lib/index.js'
import { pki } from '../helpers/pki.js'
import { until } from '../helpers/processes.js'
import { startHostileServer, type HostileServer } from '../hostile/server.js'
import { openSockets } from './harness.js'
import { paramsArb, planOf } from './mutations.js'
import { replay, replayOver, watchEscapes, type ReplayPlan } from './replay.js'
import { loadSessions, requestBody, type LoadedSession } from './sessions.js'

const seed = Number(process.env.FC_SEED ?? Math.floor(Math.random() * 2 ** 31))
const NUM_RUNS = Number(process.env.FC_RUNS ?? 100)
const params = { seed, numRuns: NUM_RUNS }
/** A run in memory takes about a millisecond, one through Client tens of them: timeouts that grow with FC_RUNS. */
const timeout = (runs: number, each: number) => Math.max(30_000, runs * each)

const sessions = loadSessions()

beforeAll(() => {
  console.log(`fast-check seed ${seed} (replay with FC_SEED=${seed}), ${NUM_RUNS} runs per property`)
})

describe('recorded sessions, split into socket reads anywhere', () => {
  for (const session of sessions) {
    it(`${session.name}: every request ends as recorded (${session.server})`, async () => {
      await fc.assert(
        fc.asyncProperty(paramsArb(session.requests.length, false), async (p) => {
          const result = await replay(planOf(session, p))
          expect(result.violations).toEqual([])
          // A stream the test reset at its response has no outcome; one that never got a response ends as recorded.
          expect(result.outcomes).toEqual(session.outcomes.map((outcome, i) => (p.reset.includes(i) && outcome.status !== 0 ? undefined : outcome)))
        }),
        params,
      )
    }, timeout(NUM_RUNS, 20))
  }
})

describe('recorded sessions, damaged', () => {
  for (const session of sessions) {
    it(`${session.name}: nothing escapes, errors are typed, every stream ends once, nothing is left`, async () => {
      await fc.assert(
        fc.asyncProperty(paramsArb(session.requests.length, true), async (p) => {
          const result = await replay(planOf(session, p))
          expect(result.violations).toEqual([])
        }),
        { ...params, numRuns: NUM_RUNS * 3 },
      )
    }, timeout(NUM_RUNS * 3, 20))
  }
})

describe('through Client, against a server replaying damaged sessions', () => {
  let server: HostileServer
  /** What every connection the server accepts replays, for the run under way. */
  let current: ReplayPlan | undefined

  beforeAll(async () => {
    // A connection that arrives between runs (a replacement pool's, its client destroyed meanwhile) is closed.
    // destroy(), not reset(): a TCP reset under a TLS socket that just became secure crashed Node 20 (SIGSEGV in SSL_read).
    server = await startHostileServer({ settings: false, script: (connection) => (current === undefined ? void connection.socket.destroy() : replayOver(connection, current)) })
  })
  afterAll(() => server.close())

  /** realClock, keeping count of the timers not yet fired or cleared: none may be left after destroy(). */
  function countingClock(): Clock & { readonly pending: number } {
    const pending = new Set<unknown>()
    return {
      now: realClock.now,
      setTimeout(callback, ms) {
        const handle: unknown = realClock.setTimeout(() => {
          pending.delete(handle)
          callback()
        }, ms)
        pending.add(handle)
        return handle
      },
      clearTimeout(handle) {
        pending.delete(handle)
        realClock.clearTimeout(handle)
      },
      get pending() {
        return pending.size
      },
    }
  }

  /** Within this, every request must have settled: the client's timeouts (below) and retries bound it. */
  const BOUND = 10_000

  /**
   * Makes the session's requests, through `request()` (even) or
   * `dispatch()` (odd), and returns what broke "settles exactly once,
   * resolved or with a DrainpipeError, in time".
   */
  async function run(client: Client, origin: string, session: LoadedSession): Promise<string[]> {
    const violations: string[] = []
    const untyped = (where: string, error: unknown) => {
      if (!(error instanceof DrainpipeError)) violations.push(`${where}: not a DrainpipeError: ${error instanceof Error ? error.stack : String(error)}`)
    }
    const requests = session.requests.map(async (request, index) => {
      const options = { method: request.method, headers: request.headers ?? {}, body: requestBody(request) ?? null }
      if (index % 2 === 0) {
        try {
          const response = await client.request(`${origin}${request.path}`, options)
          await response.body.arrayBuffer()
        } catch (error) {
          untyped(`request ${index}`, error)
        }
        return
      }
      const calls: string[] = []
      await new Promise<void>((resolve) => {
        const terminal = (call: string) => {
          calls.push(call)
          if (calls.filter((c) => c === 'end' || c === 'error').length > 1) violations.push(`dispatch ${index}: ${calls.join(' ')}`)
          resolve()
        }
        client.dispatch(
          { origin, path: request.path, ...options },
          {
            onRequestStart() {},
            onResponseStart: () => calls.push('start'),
            onResponseData() {},
            onResponseEnd: () => terminal('end'),
            onResponseError: (_controller: unknown, error: unknown) => {
              untyped(`dispatch ${index}`, error)
              terminal('error')
            },
          } as never,
        )
      })
    })
    let timer: NodeJS.Timeout | undefined
    const hung = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), BOUND)))
    if ((await Promise.race([Promise.all(requests), hung])) === 'hung') violations.push(`requests still pending after ${BOUND} ms`)
    clearTimeout(timer)
    return violations
  }

  const runs = Math.ceil(NUM_RUNS / 5)
  it('every request settles exactly once, in time, resolved or with a DrainpipeError; nothing is left open', async () => {
    const sockets = openSockets().length
    const most = Math.max(...sessions.map((session) => session.requests.length))
    await fc.assert(
      // Of the plan, the bytes, the reads and who ends apply here; pauses, resets, blocked writes and tight limits are the in-memory replay's.
      fc.asyncProperty(fc.nat({ max: sessions.length - 1 }), paramsArb(most, true), async (which, p) => {
        const session = sessions[which]!
        current = planOf(session, p)
        const clock = countingClock()
        const client = new Client({
          connect: { ca: pki.ca },
          lookup: (_host, _options, callback) => queueMicrotask(() => callback(null, [{ address: server.host, family: 4 }])),
          clock,
          retries: 1,
          connectTimeout: 1000,
          headersTimeout: 500,
          bodyTimeout: 500,
          reconnectBackoff: { base: 1, max: 10 },
        })
        const violations: string[] = []
        const escapes = watchEscapes(violations)
        try {
          violations.push(...(await run(client, `https://api.test:${server.port}`, session)))
        } finally {
          await client.destroy()
          current = undefined
          escapes.stop()
        }
        // Whatever the server still holds, it lets go of; then nothing of this run may be left.
        for (const connection of server.connections) connection.socket.destroy()
        await until(() => openSockets().length <= sockets, 'the sockets of this run to close', 2000).catch(() => violations.push(`sockets left: ${openSockets().join(', ')}`))
        if (clock.pending > 0) violations.push(`${clock.pending} timers left after destroy()`)
        expect(violations).toEqual([])
      }),
      { ...params, numRuns: runs },
    )
  }, timeout(runs, 1000))
})

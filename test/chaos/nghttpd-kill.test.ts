/**
 * Chaos against a real server: nghttpd (nghttp2's server) killed with
 * SIGKILL in the middle of load, then started again on the same port.
 *
 * - Requests in flight at the kill fail with a typed error whose outcome is
 *   honestly marked: the server may have processed them, so
 *   `unprocessed: false` (never retried silently).
 * - Requests made while it is down wait for the reconnect (the origin was up
 *   before) and succeed once it is back.
 * - Everything started after the restart succeeds; nothing hangs.
 */
import { once } from 'node:events'
import { afterEach, describe, expect, it } from 'vitest'
import { Client, ConnectionLostError, DrainpipeError } from '../../lib/index.js'
import { record } from '../helpers/channels.js'
import { tableLookup } from '../helpers/h2-server.js'
import { pki } from '../helpers/pki.js'
import { requires, until } from '../helpers/processes.js'
import { drive, kindOf, summary } from './helpers/drive.js'
import { NGHTTPD_BINARY, startNghttpd } from './helpers/nghttpd.js'

const nghttpd = requires(NGHTTPD_BINARY, 'nghttp2-server')

const cleanup: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

describe.skipIf(nghttpd.skip)(`nghttpd killed and restarted under load${nghttpd.note}`, () => {
  it('in-flight requests fail as ConnectionLostError (unprocessed: false); the rest recover; nothing hangs', async () => {
    nghttpd.check()
    const server = await startNghttpd({ host: '127.0.0.45', files: { hello: 'hello', big: Buffer.alloc(8 * 1024 * 1024, 7) } })
    cleanup.push(() => server.close())
    const client = new Client({
      connect: { ca: pki.ca },
      lookup: tableLookup({ 'api.test': [server.host] }).lookup,
      connectTimeout: 5000,
      reconnectBackoff: { base: 50, max: 300 },
    })
    cleanup.push(() => client.destroy())
    const base = `https://api.test:${server.port}`
    const events = record('drainpipe:pool:close', 'drainpipe:pool:connect-failed', 'drainpipe:pool:connect')
    cleanup.push(async () => events.stop())

    // Downloads that are certainly in flight at the kill: headers and a first chunk arrived, then the reader stalls.
    const stalled = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const res = await client.request(`${base}/big`)
        await once(res.body, 'data')
        res.body.pause()
        // Wrapped, so that awaiting this function does not await the download's end.
        const outcome = new Promise<unknown>((resolve) => {
          res.body.on('error', resolve)
          res.body.on('end', () => resolve('completed'))
        })
        return { outcome: [outcome] as const, body: res.body }
      }),
    )

    let killedAt = Infinity
    let lostAt = Infinity
    let restartedAt = Infinity
    let outage: Promise<void> = Promise.resolve()
    const startedAt = new Map<number, number>()
    const loadStart = performance.now()
    const report = await drive({
      total: 3000,
      concurrency: 10,
      maxDuration: 40_000,
      perRequestLimit: 10_000,
      onSettled: (settled) => {
        if (settled !== 500) return
        outage = (async () => {
          const lost = events.next('drainpipe:pool:close', (m) => m.reason === 'connection-lost')
          await server.kill('SIGKILL')
          killedAt = performance.now() - loadStart
          await lost
          lostAt = performance.now() - loadStart
          // Down for real: the client tried to reconnect and was refused at least twice.
          await until(() => events.of('drainpipe:pool:connect-failed').length >= 2, 'two refused reconnects', 5000)
          await server.restart()
          restartedAt = performance.now() - loadStart
        })()
      },
      send: async (index) => {
        startedAt.set(index, performance.now() - loadStart)
        const res = await client.request(`${base}/hello`)
        const body = await res.body.text()
        if (res.statusCode !== 200 || body !== 'hello') throw new Error(`GET: ${res.statusCode} ${body}`)
      },
    })
    await outage

    // The stalled downloads fail now that their reader resumes: typed, outcome unknown.
    for (const { body } of stalled) body.resume()
    const stalledOutcomes = await Promise.race([
      Promise.all(stalled.map(({ outcome: [outcome] }) => outcome)),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('HANG: stalled downloads never settled')), 5000)),
    ])

    const afterRestart = [...startedAt].filter(([, at]) => at > restartedAt).map(([index]) => index)
    const failedAfterRestart = report.failures.filter((f) => afterRestart.includes(f.index))
    const reconnects = events.of('drainpipe:pool:connect-failed').length
    console.log(
      summary('nghttpd SIGKILL + restart', report, {
        'killed at': `${killedAt.toFixed(0)} ms`,
        'loss seen after': `${(lostAt - killedAt).toFixed(1)} ms`,
        'down for': `${(restartedAt - killedAt).toFixed(0)} ms`,
        'refused reconnects': reconnects,
        'stalled downloads': stalledOutcomes.map((o) => kindOf(o)).join(' | '),
        'started after restart': afterRestart.length,
        'failed after restart': failedAfterRestart.length,
      }),
    )
    expect(server.starts).toBe(2)
    expect(report.hung).toBe(0)
    for (const outcome of stalledOutcomes) {
      expect(outcome).toBeInstanceOf(ConnectionLostError)
      expect((outcome as ConnectionLostError).unprocessed).toBe(false)
    }
    // Only requests sent before the client saw the connection die may fail, and never as "unprocessed".
    for (const failure of report.failures) {
      expect(failure.error, kindOf(failure.error)).toBeInstanceOf(DrainpipeError)
      expect(failure.error).toBeInstanceOf(ConnectionLostError)
      expect((failure.error as ConnectionLostError).unprocessed).toBe(false)
      expect(startedAt.get(failure.index)!).toBeLessThanOrEqual(lostAt)
    }
    expect(report.failed).toBeLessThanOrEqual(10) // at most the concurrency
    expect(afterRestart.length).toBeGreaterThan(100)
    expect(failedAfterRestart).toEqual([])
    expect(report.ok + report.failed).toBe(report.sent)
    await client.close()
  })
})

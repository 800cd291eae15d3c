/**
 * Chaos: the connection goes silently dead under load (the liveness tests'
 * TCP proxy in blackhole mode: no FIN, no RST, bytes go nowhere). PING
 * liveness must declare it dead within interval + timeout; the requests
 * that were on it fail as ConnectionLostError (outcome unknown, so
 * `unprocessed: false`); once the network is back, a new connection serves
 * and no request fails any more.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Client, ConnectionLostError } from '../../lib/index.js'
import { record } from '../helpers/channels.js'
import { startBackend, tableLookup } from '../helpers/h2-server.js'
import { pki } from '../helpers/pki.js'
import { startTcpProxy } from '../helpers/tcp-proxy.js'
import { drive, kindOf, summary } from './helpers/drive.js'

const cleanup: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

const PING = { interval: 1000, timeout: 500 }

describe('blackholed connection under load', () => {
  it('detected within the PING deadline, in-flight requests fail as ConnectionLostError, then 0 failures after recovery', async () => {
    const backend = await startBackend({ host: '127.0.0.55' })
    cleanup.push(() => backend.close())
    const proxy = await startTcpProxy({ target: { host: backend.host, port: backend.port }, host: '127.0.0.56' })
    cleanup.push(() => proxy.close())
    const client = new Client({
      connect: { ca: pki.ca },
      lookup: tableLookup({ 'api.test': [proxy.host] }).lookup,
      keepAlive: PING,
      connectTimeout: 3000,
      reconnectBackoff: { base: 50, max: 200 },
    })
    cleanup.push(() => client.destroy())
    const base = `https://api.test:${proxy.port}`
    const events = record('drainpipe:pool:ping-timeout', 'drainpipe:pool:connect')
    cleanup.push(async () => events.stop())

    let blackholedAt = Infinity
    let detectedAt = Infinity
    let recoveredAt = Infinity
    let chaos: Promise<void> = Promise.resolve()
    const startedAt = new Map<number, number>()
    const loadStart = performance.now()
    const now = () => performance.now() - loadStart
    const report = await drive({
      total: 4000,
      concurrency: 20,
      maxDuration: 25_000,
      perRequestLimit: 10_000,
      onSettled: (settled) => {
        if (settled !== 1000) return
        chaos = (async () => {
          const detected = events.next('drainpipe:pool:ping-timeout')
          const reconnected = events.next('drainpipe:pool:connect')
          proxy.mode('blackhole')
          blackholedAt = now()
          await detected
          detectedAt = now()
          proxy.mode('forward') // the network is back; the dead connection stays dead
          await reconnected
          recoveredAt = now()
        })()
      },
      send: async (index) => {
        startedAt.set(index, now())
        // Slow enough that streams are in flight when the connection dies.
        const res = await client.request(`${base}/delay?ms=5`)
        if ((await res.body.text()) !== 'late') throw new Error(`GET: ${res.statusCode}`)
      },
    })
    await chaos
    const detection = detectedAt - blackholedAt
    const afterRecovery = [...startedAt].filter(([, at]) => at > recoveredAt).map(([index]) => index)
    console.log(
      summary('blackhole under load', report, {
        'detected after': `${detection.toFixed(0)} ms (deadline ${PING.interval + PING.timeout} ms)`,
        'new connection after': `${(recoveredAt - detectedAt).toFixed(0)} ms`,
        'started after recovery': afterRecovery.length,
        'ping timeouts': client.stats().pingTimeouts,
      }),
    )
    expect(detection).toBeLessThan(PING.interval + PING.timeout + 300)
    expect(client.stats().pingTimeouts).toBe(1)
    expect(report.hung).toBe(0)
    // Only requests sent onto the dead connection before it was declared dead may fail, as outcome unknown.
    for (const failure of report.failures) {
      expect(failure.error, kindOf(failure.error)).toBeInstanceOf(ConnectionLostError)
      expect((failure.error as ConnectionLostError).unprocessed).toBe(false)
      expect(startedAt.get(failure.index)!).toBeLessThanOrEqual(detectedAt)
    }
    expect(report.failed).toBeGreaterThan(0)
    expect(afterRecovery.length).toBeGreaterThan(500)
    await client.close()
  })
})

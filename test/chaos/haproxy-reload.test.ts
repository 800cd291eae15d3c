/**
 * Chaos against a real server: haproxy terminating TLS + HTTP/2, reloaded
 * with `-sf` every few hundred requests while load runs. Each reload makes
 * the old process send GOAWAY and finish its streams: drainpipe must move
 * to the new process without failing a request, and every POST reaches the
 * upstream exactly once.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Client } from '../../lib/index.js'
import { record } from '../helpers/channels.js'
import { tableLookup } from '../helpers/h2-server.js'
import { pki } from '../helpers/pki.js'
import { requires } from '../helpers/processes.js'
import { drive, summary } from './helpers/drive.js'
import { HAPROXY_BINARY, startReloadableHaproxy } from './helpers/haproxy-reload.js'
import { exactlyOnce, mixedRequests, startRecorder } from './helpers/recorder.js'

const haproxy = requires(HAPROXY_BINARY, 'haproxy')

const cleanup: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

describe.skipIf(haproxy.skip)(`haproxy reloaded with -sf under load${haproxy.note}`, () => {
  it('3,000 mixed requests, a reload every 300: 0 failed, every POST processed exactly once', async () => {
    haproxy.check()
    const upstream = await startRecorder('127.0.0.43')
    cleanup.push(() => upstream.close())
    const proxy = await startReloadableHaproxy({ host: '127.0.0.44', upstream })
    cleanup.push(() => proxy.close())
    const client = new Client({ connect: { ca: pki.ca }, lookup: tableLookup({ 'api.test': [proxy.host] }).lookup })
    cleanup.push(() => client.destroy())
    const base = `https://api.test:${proxy.port}`
    const events = record('drainpipe:pool:goaway', 'drainpipe:pool:close')
    cleanup.push(async () => events.stop())

    const succeeded = new Set<string>()
    const report = await drive({
      total: 3000,
      concurrency: 20,
      maxDuration: 40_000,
      disrupt: { requests: 300, action: () => proxy.reload() },
      send: mixedRequests(client, base, succeeded),
    })
    await proxy.drained()
    const stats = client.stats()
    const { lost, duplicated } = exactlyOnce(succeeded, upstream.processed)
    console.log(
      summary('haproxy -sf reloads', report, {
        reloads: proxy.reloads,
        goaways: stats.goaways,
        retries: stats.retries,
        'POSTs lost': lost.length,
        'POSTs duplicated': duplicated.length,
      }),
    )
    if (report.failed > 0) console.log(report.failures.slice(0, 3))
    expect(report.disruptionErrors).toEqual([])
    expect(report.sent).toBe(3000)
    expect(proxy.reloads).toBeGreaterThanOrEqual(8)
    expect(report.failed).toBe(0)
    expect(report.hung).toBe(0)
    expect(lost).toEqual([])
    expect(duplicated).toEqual([])
    // Reloads reach the client as GOAWAYs from the old processes, and every connection that closed
    // closed that way, none lost. Not one GOAWAY per reload: when reloads follow each other faster
    // than the client reconnects, a generation can come and go without a connection from it.
    expect(events.of('drainpipe:pool:close').map((close) => close.reason).filter((reason) => reason !== 'goaway')).toEqual([])
    expect(stats.goaways).toBeGreaterThanOrEqual(proxy.reloads / 2)
    await client.close()
  })
})

/**
 * Chaos: the DNS server answers SERVFAIL, then stops answering (timeouts),
 * while connections keep aging out. Every recycle starts with a fresh
 * lookup; when it fails, the old pool must keep serving (best effort) and
 * try again after `recycleCooldown`. No request may fail, no POST may be
 * lost or duplicated; once DNS answers again, recycles succeed again.
 *
 * Uses the in-repo UDP DNS server (no Debian package needed).
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Client, resolverLookup, type LookupFunction } from '../../lib/index.js'
import { record } from '../helpers/channels.js'
import { startDnsServer } from '../helpers/dns-server.js'
import { startBackends } from '../helpers/h2-server.js'
import { pki } from '../helpers/pki.js'
import { until } from '../helpers/processes.js'
import { drive, summary } from './helpers/drive.js'
import { exactlyOnce, mixedRequests } from './helpers/recorder.js'

const cleanup: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

describe('DNS failing during recycles', () => {
  it('SERVFAIL, then timeouts, during recycles every 250 ms: 0 failed, the old pools keep serving, recycles resume', async () => {
    const backends = await startBackends(3, { firstHost: 51 })
    cleanup.push(() => Promise.all(backends.map((backend) => backend.close())))
    const dns = await startDnsServer({ host: '127.0.0.50' })
    cleanup.push(() => dns.close())
    dns.setRecords('api.test', backends.map((backend) => backend.host))
    const client = new Client({
      connect: { ca: pki.ca },
      // The cast: lib's `Lookup` type is not assignable to the option's `LookupFunction` (flagged in test/load-balancing.test.ts).
      lookup: resolverLookup({ servers: [dns.server], timeout: 250, tries: 1 }) as unknown as LookupFunction,
      count: 2,
      maxConnectionAge: 250,
      recycleCooldown: 150,
    })
    cleanup.push(() => client.destroy())
    const base = `https://api.test:${backends[0]!.port}`
    const events = record('drainpipe:pool:recycle')
    cleanup.push(async () => events.stop())
    const recycles = (result: 'ok' | 'failed', match = '') =>
      events.of('drainpipe:pool:recycle').filter((m) => m.result === result && (m.error?.message ?? '').includes(match)).length

    // The phases, each ended by what the client reports, not by a clock.
    const served = { normal: 0, servfail: 0, timeout: 0, restored: 0 }
    let phase: keyof typeof served = 'normal'
    let done = false
    const director = (async () => {
      await until(() => recycles('ok') >= 2, 'two recycles with DNS answering', 10_000)
      phase = 'servfail'
      dns.setFailure('api.test', 'servfail')
      await until(() => recycles('failed', 'ESERVFAIL') >= 3, 'three recycles failed on SERVFAIL', 10_000)
      phase = 'timeout'
      dns.setFailure('api.test', 'timeout')
      await until(() => recycles('failed', 'ETIMEOUT') >= 3, 'three recycles failed on a DNS timeout', 10_000)
      const okBefore = recycles('ok')
      phase = 'restored'
      dns.setFailure('api.test', null)
      await until(() => recycles('ok') >= okBefore + 3, 'three recycles once DNS answers again', 10_000)
    })().finally(() => {
      done = true
    })

    const succeeded = new Set<string>()
    const mixed = mixedRequests(client, base, succeeded)
    const report = await drive({
      total: 200_000,
      concurrency: 20,
      maxDuration: 25_000,
      stopWhen: () => done,
      send: async (index) => {
        const current = phase
        await mixed(index)
        served[current]++
      },
    })
    await director
    const stats = client.stats()
    const { lost, duplicated } = exactlyOnce(succeeded, ...backends.map((backend) => backend.processed))
    console.log(
      summary('DNS SERVFAIL/timeout during recycles', report, {
        'recycles ok': stats.recycles.ok,
        'failed on SERVFAIL': recycles('failed', 'ESERVFAIL'),
        'failed on timeout': recycles('failed', 'ETIMEOUT'),
        'served per phase': served,
        'POSTs lost': lost.length,
        'POSTs duplicated': duplicated.length,
      }),
    )
    if (report.failed > 0) console.log(report.failures.slice(0, 3))
    expect(report.failed).toBe(0)
    expect(report.hung).toBe(0)
    expect(lost).toEqual([])
    expect(duplicated).toEqual([])
    // The old pools kept serving while DNS was failing.
    expect(served.servfail).toBeGreaterThan(0)
    expect(served.timeout).toBeGreaterThan(0)
    expect(served.restored).toBeGreaterThan(0)
    await client.close()
  })
})

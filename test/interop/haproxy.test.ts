/**
 * Interop: haproxy terminating TLS and HTTP/2 in front of an HTTP/1.1
 * upstream that records POSTs (and whose trailers haproxy passes on). Its
 * GOAWAY path is the reload: a new process takes the listener over with
 * `-sf`, and the old one sends GOAWAY on its connections, finishes their
 * streams and exits; test/chaos/haproxy-reload.test.ts runs the long form.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Client } from '../../lib/index.js'
import { HAPROXY_BINARY, startReloadableHaproxy } from '../chaos/helpers/haproxy-reload.js'
import { startRecorder } from '../chaos/helpers/recorder.js'
import { tableLookup } from '../helpers/h2-server.js'
import { pki } from '../helpers/pki.js'
import { requires } from '../helpers/processes.js'
import { expectClean, line, mix, recorderRoutes, run } from './helpers/mix.js'
import { tapEngine } from './helpers/tap.js'

const haproxy = requires(HAPROXY_BINARY, 'haproxy')

const cleanup: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

describe.skipIf(haproxy.skip)(`interop: haproxy reloaded with -sf under load${haproxy.note}`, () => {
  it('1,000 mixed requests, a reload every 200: 0 failed, every POST processed exactly once', async () => {
    haproxy.check()
    const tap = tapEngine()
    const upstream = await startRecorder('127.0.0.103')
    cleanup.push(() => upstream.close())
    const proxy = await startReloadableHaproxy({ host: '127.0.0.104', upstream })
    cleanup.push(() => proxy.close())
    const client = new Client({ connect: { ca: pki.ca }, lookup: tableLookup({ 'api.test': [proxy.host] }).lookup, ...tap.clientOptions })
    cleanup.push(() => client.destroy())

    const outcome = await run({
      mix: mix(client, `https://api.test:${proxy.port}`, recorderRoutes({ trailers: true })),
      tap,
      processed: upstream.processed,
      disrupt: { requests: 200, action: () => proxy.reload() },
    })
    await proxy.drained()
    console.log(line('haproxy -sf reloads', client, outcome, { reloads: proxy.reloads }))
    expect(outcome.report.disruptionErrors).toEqual([])
    expect(proxy.reloads).toBe(4)
    expectClean(outcome)
    // A reload reaches the client as the old process's GOAWAY, unless reloads came faster than it reconnected.
    expect(client.stats().goaways).toBeGreaterThanOrEqual(2)
    await client.close()
  })
})

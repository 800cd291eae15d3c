/**
 * Interop: h2o terminating TLS and HTTP/2 in front of an HTTP/1.1 upstream
 * that records POSTs, restarted gracefully under load (SIGHUP to its
 * start_server: a new worker takes the listening socket, the old one sends
 * GOAWAY, finishes its streams and exits). h2o's proxy does not pass the
 * upstream's trailers on, so the mix has none here.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Client } from '../../lib/index.js'
import { startRecorder } from '../chaos/helpers/recorder.js'
import { tableLookup } from '../helpers/h2-server.js'
import { pki } from '../helpers/pki.js'
import { requires, until } from '../helpers/processes.js'
import { H2O_BINARY, startH2o } from './helpers/h2o.js'
import { expectClean, line, mix, recorderRoutes, run } from './helpers/mix.js'
import { tapEngine } from './helpers/tap.js'

const h2o = requires(H2O_BINARY, 'h2o')

const cleanup: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

describe.skipIf(h2o.skip)(`interop: h2o, graceful restarts (SIGHUP) under load${h2o.note}`, () => {
  it('1,000 mixed requests, a restart every 200: 0 failed, every POST processed exactly once', async () => {
    h2o.check()
    const tap = tapEngine()
    const upstream = await startRecorder('127.0.0.107')
    cleanup.push(() => upstream.close())
    const server = await startH2o({ host: '127.0.0.108', upstream })
    cleanup.push(() => server.close())
    const client = new Client({ connect: { ca: pki.ca }, lookup: tableLookup({ 'api.test': [server.host] }).lookup, ...tap.clientOptions })
    cleanup.push(() => client.destroy())

    const outcome = await run({
      mix: mix(client, `https://api.test:${server.port}`, recorderRoutes({ trailers: false })),
      tap,
      processed: upstream.processed,
      disrupt: { requests: 200, action: () => server.restart() },
    })
    console.log(line('h2o graceful restarts', client, outcome, { restarts: server.restarts }))
    expect(outcome.report.disruptionErrors).toEqual([])
    expect(server.restarts).toBe(4)
    expectClean(outcome)
    // Each restart reached the client's connection as the old worker's GOAWAY. A restart is done once
    // the new worker runs; the old one's GOAWAY can still be on its way when the last request settles.
    await until(() => client.stats().goaways >= 4, 'a GOAWAY from each old worker (4 restarts)')
    await client.close()
  })
})

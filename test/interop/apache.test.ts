/**
 * Interop: Apache httpd with mod_http2, gracefully restarted under load, in
 * front of an HTTP/1.1 upstream that records POSTs (Apache passes its
 * trailers on).
 *
 * A graceful restart sends GOAWAY(2^31-1), then GOAWAY(last-stream-id).
 * Two things Apache does then fail requests on any client, with an unknown
 * outcome (ConnectionLostError, unprocessed: false):
 * - mod_http2 (2.0.x) treats a request that arrives after its first GOAWAY
 *   (one the client sent before reading it) as a connection error: its
 *   second GOAWAY carries an error code, and it closes the connection,
 *   dropping the responses of streams it had accepted, and often processed
 *   (verdict `accepted`);
 * - a child of the old generation, forked as the restart begins, can still
 *   take a connection, answer its SETTINGS, and close it without a GOAWAY
 *   as it exits (verdict `no goaway`).
 * What the gate holds drainpipe to is the rest:
 * - no request that Apache's GOAWAY proves unprocessed (a stream above its
 *   last-stream-id) fails: it is retried (the wire engine reads every byte
 *   before the socket closes, both GOAWAYs included);
 * - no request is processed twice, and every POST that succeeded reached the
 *   upstream.
 * node:http2 may tear the session down (EPIPE) before it reads the second
 * GOAWAY, so the streams above it surface as ConnectionLostError: on the node
 * engine the gate asserts only the weaker guarantee (nothing processed
 * twice; failures are ConnectionLostError) and prints what it saw.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Client } from '../../lib/index.js'
import { startRecorder } from '../chaos/helpers/recorder.js'
import { tableLookup } from '../helpers/h2-server.js'
import { pki } from '../helpers/pki.js'
import { requires, until } from '../helpers/processes.js'
import { APACHE_BINARY, startApache } from './helpers/apache.js'
import { TOTAL, line, mix, recorderRoutes, run } from './helpers/mix.js'
import { ENGINE, tapEngine } from './helpers/tap.js'

const apache = requires(APACHE_BINARY, 'apache2')

const LOST = 'ConnectionLostError (DRAINPIPE_CONNECTION_LOST, unprocessed false)'

const cleanup: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

describe.skipIf(apache.skip)(`interop: Apache httpd (mod_http2), graceful restarts under load${apache.note}`, () => {
  it('1,000 mixed requests, a graceful restart every 250: nothing its GOAWAY proves unprocessed fails, nothing is processed twice', async () => {
    apache.check()
    const tap = tapEngine()
    const upstream = await startRecorder('127.0.0.105')
    cleanup.push(() => upstream.close())
    const server = await startApache({ host: '127.0.0.106', upstream })
    cleanup.push(() => server.close())
    const client = new Client({ connect: { ca: pki.ca }, lookup: tableLookup({ 'api.test': [server.host] }).lookup, ...tap.clientOptions })
    cleanup.push(() => client.destroy())

    const outcome = await run({
      mix: mix(client, `https://api.test:${server.port}`, recorderRoutes({ trailers: true })),
      tap,
      processed: upstream.processed,
      disrupt: { requests: 250, action: () => server.graceful() },
    })
    const { report } = outcome

    const failedPosts = report.failures.filter((failure) => failure.index % 2 === 1)
    const failedPostsProcessed = failedPosts.filter((failure) => upstream.processed.has(`p${failure.index}`)).length
    console.log(
      line('Apache graceful restarts', client, outcome, {
        restarts: server.restarts,
        'failures by GOAWAY': outcome.verdicts,
        'failed POSTs the upstream processed': `${failedPostsProcessed}/${failedPosts.length}`,
      }),
    )

    expect(report.disruptionErrors).toEqual([])
    expect(server.restarts).toBe(3)
    expect(report.sent).toBe(TOTAL)
    expect(report.hung).toBe(0)
    expect(outcome.duplicated).toEqual([])
    expect(outcome.lost).toEqual([])
    // Every restart reached the client's connection as a GOAWAY, and requests the client had sent
    // after Apache's first GOAWAY were refused or left above its last-stream-id, and retried.
    // (A restart is done once the new generation serves; the old one's GOAWAY can still be on its way.)
    await until(() => client.stats().goaways >= 3, 'a GOAWAY from each old generation (3 restarts)')
    expect(client.stats().retries).toBeGreaterThan(0)
    // The only failures: requests on a connection Apache closed, outcome unknown.
    expect(Object.keys(report.kinds).filter((kind) => kind !== LOST)).toEqual([])
    // Nothing above a GOAWAY's last-stream-id failed.
    if (ENGINE === 'wire') expect(outcome.failedUnprocessed).toEqual([])
    await client.close()
  })
})

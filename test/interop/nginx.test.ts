/**
 * Interop: nginx (Debian nginx-light) terminating TLS and HTTP/2 in front of
 * an HTTP/1.1 upstream that records POSTs. Its GOAWAY path is
 * `keepalive_requests`: after 100 requests on a connection nginx sends
 * GOAWAY, finishes the streams at or below its last-stream-id and refuses the
 * rest, which drainpipe retries on the next connection. nginx does not pass
 * the upstream's trailers on, so the mix has none here.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Client } from '../../lib/index.js'
import { NGINX_BINARY, startNginx } from '../chaos/helpers/nginx.js'
import { startRecorder } from '../chaos/helpers/recorder.js'
import { tableLookup } from '../helpers/h2-server.js'
import { pki } from '../helpers/pki.js'
import { requires } from '../helpers/processes.js'
import { expectClean, line, mix, recorderRoutes, run } from './helpers/mix.js'
import { tapEngine } from './helpers/tap.js'

const nginx = requires(NGINX_BINARY, 'nginx-light')

const cleanup: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

describe.skipIf(nginx.skip)(`interop: nginx, GOAWAY after every 100 requests (keepalive_requests)${nginx.note}`, () => {
  it('1,000 mixed requests: 0 failed, ~10 GOAWAYs, every POST processed exactly once', async () => {
    nginx.check()
    const tap = tapEngine()
    const upstream = await startRecorder('127.0.0.101')
    cleanup.push(() => upstream.close())
    const server = await startNginx({ host: '127.0.0.102', upstream, keepaliveRequests: 100 })
    cleanup.push(() => server.close())
    const client = new Client({ connect: { ca: pki.ca }, lookup: tableLookup({ 'api.test': [server.host] }).lookup, ...tap.clientOptions })
    cleanup.push(() => client.destroy())

    const outcome = await run({ mix: mix(client, `https://api.test:${server.port}`, recorderRoutes({ trailers: false })), tap, processed: upstream.processed })
    console.log(line('nginx keepalive_requests 100', client, outcome))
    expectClean(outcome)
    // 1,000 requests / 100 per connection; a connection may end early with streams in flight.
    expect(client.stats().goaways).toBeGreaterThanOrEqual(9)
    await client.close()
  })
})

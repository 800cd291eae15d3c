/**
 * Chaos against a real server: nginx (Debian nginx-light) speaking HTTP/2
 * over TLS with `keepalive_requests 50`, so it sends GOAWAY after every 50
 * requests on a connection. Streams the client had already sent above the
 * GOAWAY's last-stream-id were not processed and must be retried; the ones
 * below it must finish. Behind nginx, an HTTP/1.1 upstream records POST ids.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Client } from '../../lib/index.js'
import { tableLookup } from '../helpers/h2-server.js'
import { pki } from '../helpers/pki.js'
import { requires } from '../helpers/processes.js'
import { drive, summary } from './helpers/drive.js'
import { NGINX_BINARY, startNginx } from './helpers/nginx.js'
import { exactlyOnce, mixedRequests, startRecorder } from './helpers/recorder.js'

const nginx = requires(NGINX_BINARY, 'nginx-light')

const cleanup: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

describe.skipIf(nginx.skip)(`nginx with keepalive_requests 50${nginx.note}`, () => {
  it('5,000 mixed GET/POST requests at concurrency 20: ~100 GOAWAYs, 0 failed, every POST processed exactly once', async () => {
    nginx.check()
    const upstream = await startRecorder('127.0.0.41')
    cleanup.push(() => upstream.close())
    const server = await startNginx({ host: '127.0.0.42', upstream, keepaliveRequests: 50 })
    cleanup.push(() => server.close())
    const client = new Client({ connect: { ca: pki.ca }, lookup: tableLookup({ 'api.test': [server.host] }).lookup })
    cleanup.push(() => client.destroy())
    const base = `https://api.test:${server.port}`

    const succeeded = new Set<string>()
    const report = await drive({
      total: 5000,
      concurrency: 20,
      maxDuration: 40_000,
      send: mixedRequests(client, base, succeeded),
    })
    const stats = client.stats()
    const { lost, duplicated } = exactlyOnce(succeeded, upstream.processed)
    console.log(
      summary('nginx keepalive_requests 50', report, {
        goaways: stats.goaways,
        retries: stats.retries,
        'POSTs lost': lost.length,
        'POSTs duplicated': duplicated.length,
      }),
    )
    if (report.failed > 0) console.log(report.failures.slice(0, 3), await server.errorLog())
    expect(report.sent).toBe(5000)
    expect(report.failed).toBe(0)
    expect(report.hung).toBe(0)
    expect(lost).toEqual([])
    expect(duplicated).toEqual([])
    // 5,000 requests / 50 per connection; a few more connections may end early with streams in flight.
    expect(stats.goaways).toBeGreaterThanOrEqual(90)
    await client.close()
  })
})

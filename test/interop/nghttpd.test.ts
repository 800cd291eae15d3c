/**
 * Interop: nghttpd (nghttp2's own server) serving files over TLS. It has no
 * graceful GOAWAY path (killing and restarting it is test/chaos's
 * nghttpd-kill), so this is plain load with the settings that make a peer
 * different from node:http2's defaults:
 * - at most 10 concurrent streams (`-m 10`) against 20 concurrent requests;
 * - 16 KiB stream windows and a 64 KiB connection window for what we send
 *   (`-w 14 -W 16`): every 20 KB POST body waits for WINDOW_UPDATEs;
 * - padded DATA and HEADERS (`-b 7`);
 * - a 256-byte HPACK table for our encoder, 512 for its own (`-c`, `--encoder-header-table-size`);
 * - a trailer on every response (`--trailer`), POST bodies echoed (`--echo-upload`).
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Client } from '../../lib/index.js'
import { NGHTTPD_BINARY, startNghttpd } from '../chaos/helpers/nghttpd.js'
import { pattern, tableLookup } from '../helpers/h2-server.js'
import { pki } from '../helpers/pki.js'
import { requires } from '../helpers/processes.js'
import { BIG, expectClean, line, mix, run } from './helpers/mix.js'
import { tapEngine } from './helpers/tap.js'

const nghttpd = requires(NGHTTPD_BINARY, 'nghttp2-server')

const POST_SIZE = 20_000

const cleanup: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

describe.skipIf(nghttpd.skip)(`interop: nghttpd, small windows, 10 streams, padding, small HPACK tables, trailers${nghttpd.note}`, () => {
  it('1,000 mixed requests: 0 failed, uploads and downloads byte-exact', async () => {
    nghttpd.check()
    const tap = tapEngine()
    const server = await startNghttpd({
      host: '127.0.0.109',
      files: { hello: 'hello', big: pattern(BIG), trailers: 'with trailers' },
      args: ['-m', '10', '-w', '14', '-W', '16', '-b', '7', '-c', '256', '--encoder-header-table-size=512', '--trailer=x-checksum: abc', '--echo-upload'],
    })
    cleanup.push(() => server.close())
    const client = new Client({ connect: { ca: pki.ca }, lookup: tableLookup({ 'api.test': [server.host] }).lookup, ...tap.clientOptions })
    cleanup.push(() => client.destroy())

    const upload = pattern(POST_SIZE)
    const outcome = await run({
      mix: mix(client, `https://api.test:${server.port}`, {
        hello: '/hello',
        big: '/big',
        post: (id) => {
          const body = Buffer.concat([Buffer.from(`${id}:`), upload])
          return { path: '/echo', body, answer: body }
        },
        trailers: { path: '/trailers', body: 'with trailers' },
      }),
      tap,
    })
    console.log(line('nghttpd', client, outcome))
    expectClean(outcome)
    // drainpipe read the limit and kept to it: nghttpd refuses a stream beyond it (REFUSED_STREAM),
    // which would show as a retry; nothing else here is retried.
    const stats = client.stats()
    expect(stats.origins[`https://api.test:${server.port}`]?.pools[0]?.maxConcurrentStreams).toBe(10)
    expect(stats.retries).toBe(0)
    await client.close()
  })
})

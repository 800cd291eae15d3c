/**
 * Interop: Node's own http2 server (test/helpers/h2-server.ts, TLS) sending
 * GOAWAY during load, every 100 requests, two ways in turn:
 * - `session.goaway(NO_ERROR, lastProcStreamID)`: the session stays up for
 *   the streams at or below it; the client retries the ones above and closes
 *   the connection once drained;
 * - `session.close()`: GOAWAY, then the server closes once its streams are done.
 *
 * node:http2 fixes a GOAWAY's last-stream-id when `session.goaway()` is
 * called, but nghttp2 accepts new streams until the frame is written: a
 * request already in the socket buffer then reaches the 'stream' handler
 * although the GOAWAY announces it unprocessed (Node 20 and 22), and a
 * client that retries it, as RFC 9113 allows, has it processed twice. A
 * server that uses `session.goaway()` must refuse those streams itself; this
 * one does (as test/lifecycle.test.ts's does). `session.close()` refuses
 * them on its own.
 */
import http2, { type Http2Session } from 'node:http2'
import { afterEach, describe, expect, it } from 'vitest'
import { Client } from '../../lib/index.js'
import { startBackend, tableLookup } from '../helpers/h2-server.js'
import { pki } from '../helpers/pki.js'
import { TOTAL, expectClean, line, mix, recorderRoutes, run } from './helpers/mix.js'
import { tapEngine } from './helpers/tap.js'

const cleanup: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

describe("interop: Node's http2 server, session.goaway() and session.close() under load", () => {
  it('1,000 mixed requests, a GOAWAY every 100: 0 failed, every POST processed exactly once', async () => {
    const tap = tapEngine()
    // The last-stream-id each session announced with session.goaway(): streams above it are refused, not served.
    const announced = new WeakMap<Http2Session, number>()
    const told = new WeakSet<Http2Session>()
    const backend = await startBackend({
      host: '127.0.0.111',
      handler: (req) => {
        const last = announced.get(req.stream.session!)
        if (last === undefined || req.stream.id! <= last) return false
        req.stream.close(http2.constants.NGHTTP2_REFUSED_STREAM)
      },
    })
    cleanup.push(() => backend.close())
    const client = new Client({ connect: { ca: pki.ca }, lookup: tableLookup({ 'api.test': [backend.host] }).lookup, ...tap.clientOptions })
    cleanup.push(() => client.destroy())

    let goaways = 0
    let closes = 0
    const outcome = await run({
      mix: mix(client, `https://api.test:${backend.port}`, recorderRoutes({ trailers: true })),
      tap,
      processed: backend.processed,
      onSettled: (settled) => {
        if (settled % 100 !== 0 || settled >= TOTAL) return
        const useGoaway = (settled / 100) % 2 === 1
        // Once per session: a second GOAWAY must not raise the last-stream-id, and close() would.
        for (const session of backend.sessions) {
          if (session.closed || session.destroyed || told.has(session)) continue
          told.add(session)
          if (useGoaway) {
            const last = session.state.lastProcStreamID ?? 0
            announced.set(session, last)
            session.goaway(http2.constants.NGHTTP2_NO_ERROR, last)
          } else {
            session.close()
          }
        }
        if (useGoaway) goaways++
        else closes++
      },
    })
    console.log(line("Node's http2 server", client, outcome, { 'session.goaway()': goaways, 'session.close()': closes, connections: backend.connections }))
    expectClean(outcome)
    // Each reached the client's connection (a new one is up long before the next); a server may
    // answer the client's own GOAWAY, at the end of a drain, with one more.
    expect(client.stats().goaways).toBeGreaterThanOrEqual(goaways + closes)
    await client.close()
  })
})

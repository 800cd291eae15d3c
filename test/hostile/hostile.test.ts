/**
 * Malformed and hostile servers. Each case is a raw HTTP/2 server
 * (test/hostile/server.ts) that misbehaves on its first connection and
 * behaves on the following ones. For each we assert:
 *
 * - the affected request gets a typed `DrainpipeError`, with `unprocessed`
 *   true only when the server provably did not process it;
 * - it settles within the relevant deadline (no hang past the timeouts);
 * - a following request succeeds (the client recovered, no poisoned pool);
 * - `close()` completes and every connection is closed (no leak), and the
 *   process never saw an uncaught exception (vitest fails the run if so).
 */
import { afterEach, describe, expect, it } from 'vitest'
import {
  Client,
  ConnectError,
  ConnectTimeoutError,
  ConnectionLostError,
  DrainpipeError,
  HeadersTimeoutError,
  ProtocolError,
  type ClientOptions,
} from '../../lib/index.js'
import { tableLookup } from '../helpers/h2-server.js'
import { pki } from '../helpers/pki.js'
import {
  encodeFrame,
  ErrorCode,
  Flag,
  FrameType,
  frames,
  headerBlock,
  hpackLiteral,
  response,
  serveWell,
  Setting,
  startHostileServer,
  type HostileConnection,
  type HostileServer,
  type Script,
} from './server.js'

const HOST = '127.0.0.31'
/** PING liveness used by every case: a dead connection is declared within 1,000 + 500 ms. */
const PING = { interval: 1000, timeout: 500 }
const PING_DEADLINE = PING.interval + PING.timeout

const cleanup: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

interface Outcome {
  status?: number
  body?: string
  /** The request itself failed (no response). */
  error?: unknown
  /** The response started, then its body failed. */
  bodyError?: unknown
  /** Time until the outcome was known (ms). */
  ms: number
}

async function start(script: Script, settings?: Parameters<typeof startHostileServer>[0]['settings'], options: ClientOptions = {}) {
  const server = await startHostileServer({ host: HOST, script, settings })
  const client = new Client({
    connect: { ca: pki.ca },
    lookup: tableLookup({ 'api.test': [HOST] }).lookup,
    keepAlive: PING,
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
    connectTimeout: 2000,
    drainTimeout: 1000,
    reconnectBackoff: { base: 20, max: 100 },
    ...options,
  })
  cleanup.push(async () => {
    await client.destroy()
    await server.close()
  })
  return { server, client, base: `https://api.test:${server.port}` }
}

/** Runs one request to its end, however it ends; never waits past `limit`. */
async function outcome(client: Client, url: string, init: { method?: string; body?: string | Buffer } = {}, limit = 15_000): Promise<Outcome> {
  const started = performance.now()
  let timer: NodeJS.Timeout | undefined
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`HANG: no outcome within ${limit} ms`)), limit)
  })
  try {
    const result = await Promise.race([
      (async (): Promise<Outcome> => {
        let res
        try {
          res = await client.request(url, init)
        } catch (error) {
          return { error, ms: performance.now() - started }
        }
        try {
          const body = await res.body.text()
          return { status: res.statusCode, body, ms: performance.now() - started }
        } catch (bodyError) {
          return { status: res.statusCode, bodyError, ms: performance.now() - started }
        }
      })(),
      hung,
    ])
    return result
  } finally {
    clearTimeout(timer)
  }
}

/** Hostile on the first connection only; later connections are served well. */
const once =
  (hostile: (connection: HostileConnection) => void | Promise<void>): Script =>
  (connection) =>
    connection.index === 1 ? hostile(connection) : serveWell(connection)

/** The common end of every case: the client recovers, closes, and leaves nothing open. */
async function recoversAndCloses(client: Client, server: HostileServer, base: string): Promise<void> {
  const after = await outcome(client, `${base}/after`)
  expect(after.error ?? after.bodyError).toBeUndefined()
  expect(after.body).toBe('ok')
  const closing = performance.now()
  await Promise.race([
    client.close(),
    new Promise((_, reject) => setTimeout(() => reject(new Error('close() did not finish within 3 s')), 3000)),
  ])
  await server.allClosed(3000)
  expect(server.scriptErrors).toEqual([])
  expect(performance.now() - closing).toBeLessThan(3000)
}

function typed(error: unknown, Expected: new (...args: never[]) => DrainpipeError, unprocessed = false): void {
  expect(error).toBeInstanceOf(Expected)
  expect((error as DrainpipeError).unprocessed).toBe(unprocessed)
}

/** A HEADERS frame whose block is split over CONTINUATION frames of at most 16,000 octets. */
function splitHeaders(streamId: number, block: Buffer, endStream: boolean): Buffer {
  const parts: Buffer[] = []
  for (let offset = 0; offset < block.length; offset += 16_000) parts.push(block.subarray(offset, offset + 16_000))
  const out = [encodeFrame(FrameType.HEADERS, (endStream ? Flag.END_STREAM : 0) | (parts.length === 1 ? Flag.END_HEADERS : 0), streamId, parts[0])]
  for (let i = 1; i < parts.length; i++) out.push(frames.continuation(streamId, parts[i]!, i === parts.length - 1))
  return Buffer.concat(out)
}

describe('invalid frames', () => {
  it('frames of an unknown type are ignored (RFC 9113 §4.1): the request succeeds', async () => {
    const { client, server, base } = await start(
      once(async (c) => {
        const id = await c.stream(1)
        c.write(encodeFrame(0xfa, 0, 0, Buffer.from('ext')))
        c.write(encodeFrame(0xfb, 0xff, id, Buffer.from('ext')))
        c.write(response(id, 200, 'ok'))
        serveWell(c)
      }),
    )
    const result = await outcome(client, `${base}/x`)
    expect(result.body).toBe('ok')
    await recoversAndCloses(client, server, base)
  })

  // Connection errors the client detects itself (it answers with GOAWAY). node:http2 reports nothing
  // for them (the session stays "open" and stops reading), so PING liveness is what ends them.
  const connectionErrors: [string, (c: HostileConnection, id: number) => void][] = [
    ['DATA on stream 0 (PROTOCOL_ERROR)', (c) => c.write(frames.data(0, 'x'))],
    ['SETTINGS whose length is not a multiple of 6 (FRAME_SIZE_ERROR)', (c) => c.write(encodeFrame(FrameType.SETTINGS, 0, 0, Buffer.alloc(5)))],
    ['RST_STREAM on stream 0 (PROTOCOL_ERROR)', (c) => c.write(frames.rstStream(0, ErrorCode.PROTOCOL_ERROR))],
    ['an HPACK index of 0 (COMPRESSION_ERROR)', (c, id) => c.write(encodeFrame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, id, Buffer.from([0x80])))],
    [
      'a DATA frame larger than SETTINGS_MAX_FRAME_SIZE after the headers (FRAME_SIZE_ERROR)',
      (c, id) => {
        c.write(frames.headers(id, [[':status', '200']]))
        c.write(frames.data(id, Buffer.alloc(20_000)))
      },
    ],
    ['HTTP/1.1 bytes instead of frames', (c) => c.write(Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'))],
    ['HEADERS on an even (server) stream never promised', (c) => c.write(frames.headers(2, [[':status', '200']], { endStream: true }))],
    [
      'PUSH_PROMISE although the client disabled push',
      (c, id) => c.write(frames.pushPromise(id, 2, [[':method', 'GET'], [':path', '/p'], [':scheme', 'https'], [':authority', 'api.test']])),
    ],
    [
      'a WINDOW_UPDATE that overflows the connection window (FLOW_CONTROL_ERROR)',
      (c) => {
        c.write(frames.windowUpdate(0, 0x7fffffff))
        c.write(frames.windowUpdate(0, 0x7fffffff))
      },
    ],
  ]
  for (const [name, misbehave] of connectionErrors) {
    it(`${name}: typed error within the PING deadline, then a new connection serves`, async () => {
      const { client, server, base } = await start(
        once(async (c) => {
          misbehave(c, await c.stream(1))
        }),
      )
      const result = await outcome(client, `${base}/x`)
      const error = result.error ?? result.bodyError
      console.log(`${name}: ${(error as Error)?.name}: ${(error as Error)?.message} after ${result.ms.toFixed(0)} ms`)
      typed(error, ConnectionLostError)
      expect(result.ms).toBeLessThan(PING_DEADLINE + 500)
      await recoversAndCloses(client, server, base)
      expect(server.connections.length).toBe(2)
    })
  }

  it('a connection the client declared broken is not kept for the next request when PING liveness is off', async () => {
    // Without PING, only the request's own timeout ends it; the pool must not outlive it.
    const { client, server, base } = await start(
      once(async (c) => {
        await c.stream(1)
        c.write(frames.data(0, 'x'))
      }),
      undefined,
      { keepAlive: false, headersTimeout: 500 },
    )
    const first = await outcome(client, `${base}/x`)
    // Node versions differ: some report the protocol error (the connection is lost at once),
    // some only stop reading (the request's timeout ends it). Either way, typed and not unprocessed.
    const FirstError = first.error instanceof ConnectionLostError ? ConnectionLostError : HeadersTimeoutError
    typed(first.error, FirstError)
    const second = await outcome(client, `${base}/y`)
    console.log(
      `after a PROTOCOL_ERROR without PING: second request ${second.body ?? (second.error as Error)?.name} in ${second.ms.toFixed(0)} ms, connections ${server.connections.length}`,
    )
    expect(second.error).toBeUndefined()
    expect(second.body).toBe('ok')
    await recoversAndCloses(client, server, base)
  })
})

describe('floods', () => {
  const floods: [string, Buffer][] = [
    ['SETTINGS', frames.settings([])],
    ['PING', frames.ping(Buffer.alloc(8))],
  ]
  for (const [name, one] of floods) {
    it(`a ${name} flood (20,000 frames) ends the connection with a typed error; the next connection serves`, async () => {
      const { client, server, base } = await start(
        once(async (c) => {
          await c.stream(1)
          c.write(Buffer.concat(Array.from({ length: 20_000 }, () => one)))
        }),
      )
      const result = await outcome(client, `${base}/x`)
      typed(result.error, ConnectionLostError)
      expect(result.ms).toBeLessThan(PING_DEADLINE)
      await recoversAndCloses(client, server, base)
    })
  }

  it('an endless CONTINUATION sequence (no END_HEADERS) is cut off with a typed error', async () => {
    const { client, server, base } = await start(
      once(async (c) => {
        const id = await c.stream(1)
        c.write(encodeFrame(FrameType.HEADERS, 0, id, headerBlock([[':status', '200']])))
        const one = frames.continuation(id, hpackLiteral('x-a', 'b'), false)
        for (let round = 0; round < 100 && !c.closed; round++) {
          c.write(Buffer.concat(Array.from({ length: 1000 }, () => one)))
          await new Promise((resolve) => setImmediate(resolve))
        }
      }),
    )
    const result = await outcome(client, `${base}/x`)
    typed(result.error, ConnectionLostError)
    expect(result.ms).toBeLessThan(PING_DEADLINE)
    await recoversAndCloses(client, server, base)
  })

  it('endless 1xx informational responses end at headersTimeout', async () => {
    const { client, server, base } = await start(
      once(async (c) => {
        const id = await c.stream(1)
        serveWell(c)
        for (let i = 0; i < 300 && !c.closed && !c.received.some((f) => f.type === FrameType.RST_STREAM); i++) {
          c.write(frames.headers(id, [[':status', '103'], ['link', '</style.css>; rel=preload']]))
          await new Promise((resolve) => setTimeout(resolve, 5))
        }
      }),
      undefined,
      { headersTimeout: 800 },
    )
    const result = await outcome(client, `${base}/x`)
    typed(result.error, HeadersTimeoutError)
    expect(result.ms).toBeLessThan(800 + 400)
    await recoversAndCloses(client, server, base)
  })
})

describe('malformed responses', () => {
  const malformed: [string, [string, string][]][] = [
    ['a forbidden connection header (connection: keep-alive)', [[':status', '200'], ['connection', 'keep-alive']]],
    ['a forbidden transfer-encoding: chunked', [[':status', '200'], ['transfer-encoding', 'chunked']]],
    ['an upgrade header', [[':status', '200'], ['upgrade', 'h2c']]],
    ['no :status', [['content-type', 'text/plain']]],
    ['a :status that is not a number', [[':status', 'abc']]],
    ['a request pseudo-header in a response', [[':status', '200'], [':path', '/']]],
    ['an upper-case header name', [[':status', '200'], ['X-Upper', 'v']]],
  ]
  for (const [name, fields] of malformed) {
    it(`HEADERS with ${name}: ProtocolError on that request only`, async () => {
      const { client, server, base } = await start(
        once(async (c) => {
          c.write(frames.headers(await c.stream(1), fields, { endStream: true }))
          serveWell(c) // the connection itself stays usable
        }),
      )
      const result = await outcome(client, `${base}/x`)
      typed(result.error, ProtocolError)
      expect(result.ms).toBeLessThan(1000)
      await recoversAndCloses(client, server, base)
      expect(server.connections.length).toBe(1)
    })
  }

  it('an oversized header list (one 200 KB field over CONTINUATIONs): typed error within the PING deadline', async () => {
    const { client, server, base } = await start(
      once(async (c) => {
        const id = await c.stream(1)
        c.write(splitHeaders(id, headerBlock([[':status', '200'], ['x-big', 'a'.repeat(200_000)]]), true))
      }),
    )
    const result = await outcome(client, `${base}/x`)
    typed(result.error ?? result.bodyError, ConnectionLostError)
    expect(result.ms).toBeLessThan(PING_DEADLINE + 500)
    await recoversAndCloses(client, server, base)
  })

  it('an oversized header list (2,000 fields): ProtocolError on that request', async () => {
    const fields: [string, string][] = [[':status', '200']]
    for (let i = 0; i < 2000; i++) fields.push([`x-h${i}`, 'v'])
    const { client, server, base } = await start(
      once(async (c) => {
        c.write(splitHeaders(await c.stream(1), headerBlock(fields), true))
        serveWell(c)
      }),
    )
    const result = await outcome(client, `${base}/x`)
    typed(result.error, ProtocolError)
    expect(result.ms).toBeLessThan(1000)
    await recoversAndCloses(client, server, base)
  })

  it('a body shorter than its content-length: the body fails with ProtocolError', async () => {
    const { client, server, base } = await start(
      once(async (c) => {
        const id = await c.stream(1)
        c.write(frames.headers(id, [[':status', '200'], ['content-length', '10']]))
        c.write(frames.data(id, 'abc', true))
        serveWell(c)
      }),
    )
    const result = await outcome(client, `${base}/x`)
    expect(result.status).toBe(200)
    typed(result.bodyError, ProtocolError)
    await recoversAndCloses(client, server, base)
  })

  it('trailers carrying a pseudo-header: the body fails with ProtocolError', async () => {
    const { client, server, base } = await start(
      once(async (c) => {
        const id = await c.stream(1)
        c.write(frames.headers(id, [[':status', '200']]))
        c.write(frames.data(id, 'ab'))
        c.write(frames.headers(id, [[':status', '200']], { endStream: true }))
        serveWell(c)
      }),
    )
    const result = await outcome(client, `${base}/x`)
    typed(result.bodyError, ProtocolError)
    await recoversAndCloses(client, server, base)
  })
})

describe('flow control', () => {
  it('a stream window never opened (INITIAL_WINDOW_SIZE 0): the POST ends at headersTimeout, nothing leaks', async () => {
    const { client, server, base } = await start(
      once(async (c) => {
        await c.stream(1) // takes the headers, never a WINDOW_UPDATE, never an answer
        serveWell(c)
      }),
      (index) => (index === 1 ? [[Setting.INITIAL_WINDOW_SIZE, 0]] : []),
      { headersTimeout: 800 },
    )
    const result = await outcome(client, `${base}/x`, { method: 'POST', body: 'x'.repeat(100) })
    typed(result.error, HeadersTimeoutError)
    expect(result.ms).toBeLessThan(800 + 400)
    const first = server.connections[0]!
    expect(first.received.filter((f) => f.type === FrameType.DATA && f.payload.length > 0)).toEqual([])
    await recoversAndCloses(client, server, base)
  })

  it('the connection window never reopened (300 KB POST): it ends at headersTimeout', async () => {
    const { client, server, base } = await start(
      once(async (c) => {
        await c.stream(1)
        serveWell(c)
      }),
      undefined,
      { headersTimeout: 800 },
    )
    const result = await outcome(client, `${base}/x`, { method: 'POST', body: Buffer.alloc(300_000) })
    typed(result.error, HeadersTimeoutError)
    expect(result.ms).toBeLessThan(800 + 400)
    const sent = server.connections[0]!.received.filter((f) => f.type === FrameType.DATA).reduce((n, f) => n + f.payload.length, 0)
    expect(sent).toBeLessThanOrEqual(65_535)
    await recoversAndCloses(client, server, base)
  })
})

describe('GOAWAY', () => {
  it('GOAWAY with a last-stream-id above every stream, then the answer: success, and the next request on a new connection', async () => {
    const { client, server, base } = await start(
      once(async (c) => {
        const id = await c.stream(1)
        c.write(frames.goaway(0x7fffffff))
        c.write(response(id, 200, 'ok'))
      }),
    )
    const result = await outcome(client, `${base}/x`)
    expect(result.body).toBe('ok')
    await recoversAndCloses(client, server, base)
    expect(server.connections.length).toBe(2)
  })

  it('GOAWAY with a last-stream-id above every stream, then the connection drops: ConnectionLostError, not retried', async () => {
    const { client, server, base } = await start(
      once(async (c) => {
        await c.stream(1)
        c.write(frames.goaway(0x7fffffff))
        c.socket.end()
      }),
    )
    const result = await outcome(client, `${base}/x`, { method: 'POST', body: 'once' })
    typed(result.error, ConnectionLostError)
    // The server may have processed it: it was sent exactly once.
    expect(server.connections.reduce((n, c) => n + c.streams.length, 0)).toBe(1)
    await recoversAndCloses(client, server, base)
  })

  it('a second GOAWAY that raises last-stream-id does not make a refused stream look processed', async () => {
    const { client, server, base } = await start(
      once(async (c) => {
        await c.stream(2)
        c.write(frames.goaway(1))
        c.write(frames.goaway(0x7fffffff)) // illegal increase (RFC 9113 §6.8)
        c.socket.end()
      }),
    )
    const [first, second] = await Promise.all([outcome(client, `${base}/1`), outcome(client, `${base}/2`)])
    // Stream 1 was at or below last-stream-id 1: outcome unknown. Stream 3 was above it: retried on connection 2.
    typed(first.error, ConnectionLostError)
    expect(second.body).toBe('ok')
    await recoversAndCloses(client, server, base)
  })
})

describe('resets before a response', () => {
  it('RST_STREAM(NO_ERROR) before any response: ProtocolError (code 0) at once, not retried, no wait for headersTimeout', async () => {
    const { client, server, base } = await start(
      once(async (c) => {
        const id = await c.stream(1)
        c.write(frames.rstStream(id, ErrorCode.NO_ERROR))
        serveWell(c)
      }),
    )
    const result = await outcome(client, `${base}/x`)
    typed(result.error, ProtocolError)
    expect((result.error as ProtocolError).http2Code).toBe(ErrorCode.NO_ERROR)
    expect(result.ms).toBeLessThan(PING_DEADLINE)
    await recoversAndCloses(client, server, base)
    expect(server.connections[0]!.streams.length).toBe(2)
  })
})

describe('resets and lies after the response started', () => {
  /** A 200 that announces 1,000 bytes of body and sends the first 100. */
  const partialResponse = (c: HostileConnection, id: number) => {
    c.write(frames.headers(id, [[':status', '200'], ['content-length', '1000']]))
    c.write(frames.data(id, 'x'.repeat(100)))
  }

  it('RST_STREAM(INTERNAL_ERROR) after a partial body: the body fails with ProtocolError (code 2), not retried', async () => {
    const { client, server, base } = await start(
      once(async (c) => {
        const id = await c.stream(1)
        partialResponse(c, id)
        c.write(frames.rstStream(id, ErrorCode.INTERNAL_ERROR))
        serveWell(c)
      }),
    )
    const result = await outcome(client, `${base}/x`)
    expect(result.status).toBe(200)
    typed(result.bodyError, ProtocolError)
    expect((result.bodyError as ProtocolError).http2Code).toBe(ErrorCode.INTERNAL_ERROR)
    await recoversAndCloses(client, server, base)
    expect(server.connections[0]!.streams.length).toBe(2)
  })

  // Signals that would mean "not processed" before a response; after one, they cannot.
  const lateDenials: [string, (c: HostileConnection, id: number) => void][] = [
    [
      'RST_STREAM(REFUSED_STREAM)',
      (c, id) => {
        c.write(frames.rstStream(id, ErrorCode.REFUSED_STREAM))
        serveWell(c)
      },
    ],
    [
      'GOAWAY(last-stream-id 0)',
      (c) => {
        c.write(frames.goaway(0))
        c.socket.end()
      },
    ],
  ]
  for (const [name, deny] of lateDenials) {
    it(`${name} after the response started is not reported as unprocessed`, async () => {
      const { client, server, base } = await start(
        once(async (c) => {
          const id = await c.stream(1)
          partialResponse(c, id)
          deny(c, id)
        }),
      )
      const result = await outcome(client, `${base}/x`, { method: 'POST', body: 'once' })
      expect(result.status).toBe(200)
      // The server answered: it processed the request, whatever its reset or GOAWAY says.
      typed(result.bodyError, DrainpipeError)
      await recoversAndCloses(client, server, base)
    })
  }

  it('the connection reset (TCP RST) after a partial body: ConnectionLostError', async () => {
    const { client, server, base } = await start(
      once(async (c) => {
        const id = await c.stream(1)
        partialResponse(c, id)
        // The client's PING ACK proves it read the partial body before the RST.
        c.write(frames.ping(Buffer.from('partial!')))
        await c.frame((f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0)
        c.reset()
      }),
    )
    const result = await outcome(client, `${base}/x`)
    expect(result.status).toBe(200)
    typed(result.bodyError, ConnectionLostError)
    await recoversAndCloses(client, server, base)
  })
})

describe('handshake', () => {
  it('a server that never sends SETTINGS: ConnectTimeoutError (unprocessed) at connectTimeout', async () => {
    const { client, server, base } = await start(
      (c) => {
        if (c.index > 1) {
          c.write(frames.settings([]))
          serveWell(c)
        } else {
          c.answerSettings = false // silent: not even a SETTINGS ACK
        }
      },
      false,
      { connectTimeout: 600 },
    )
    const result = await outcome(client, `${base}/x`)
    typed(result.error, ConnectTimeoutError, true)
    expect(result.ms).toBeLessThan(600 + 400)
    await recoversAndCloses(client, server, base)
  })

  it('a server that sends a PING instead of SETTINGS first: ConnectError (unprocessed)', async () => {
    const { client, server, base } = await start(
      (c) => {
        if (c.index > 1) {
          c.write(frames.settings([]))
          serveWell(c)
        } else {
          c.write(frames.ping())
        }
      },
      false,
    )
    const result = await outcome(client, `${base}/x`)
    typed(result.error, ConnectError, true)
    await recoversAndCloses(client, server, base)
  })

  it('a server that closes right after the TLS handshake: ConnectError (unprocessed)', async () => {
    const { client, server, base } = await start(
      (c) => {
        if (c.index > 1) {
          c.write(frames.settings([]))
          serveWell(c)
        } else {
          c.socket.end()
        }
      },
      false,
    )
    const result = await outcome(client, `${base}/x`)
    typed(result.error, ConnectError, true)
    await recoversAndCloses(client, server, base)
  })
})

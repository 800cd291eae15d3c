/**
 * HPACK against nghttp2's, live: nghttpd (Debian `nghttp2-server`, without
 * TLS) decodes the request heads our encoder makes and answers with heads
 * our decoder must read, over one connection of a few hundred requests,
 * with each side's table sizes set small, large or to 0. A file's size,
 * sent back as content-length, shows that the server read the path we sent.
 *
 * The framing here is the least that does (RFC 9113 §3.4, §4.1, §6):
 * a preface, SETTINGS and their ACK, one HEADERS frame per request.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HpackDecoder, HpackEncoder } from '../../lib/wire/hpack.js'
import { accepts, freePort, requires, start, stop, until, type Child } from '../helpers/processes.js'

const NGHTTPD = '/usr/sbin/nghttpd'
const HOST = '127.0.0.1'
const REQUESTS = 300
/** nghttpd allows 100 concurrent streams. */
const IN_FLIGHT = 50
const FILES = 10

const DATA = 0x0
const HEADERS = 0x1
const RST_STREAM = 0x3
const SETTINGS = 0x4
const GOAWAY = 0x7
const END_STREAM = 0x1
const ACK = 0x1
const END_HEADERS = 0x4
const PADDED = 0x8
const PRIORITY = 0x20
const SETTINGS_HEADER_TABLE_SIZE = 0x1

const nghttpd = requires(NGHTTPD, 'nghttp2-server')

function frame(type: number, flags: number, stream: number, payload: Uint8Array): Buffer {
  const header = Buffer.alloc(9)
  header.writeUIntBE(payload.length, 0, 3)
  header[3] = type
  header[4] = flags
  header.writeUInt32BE(stream, 5)
  return Buffer.concat([header, payload])
}

interface Tables {
  /** nghttpd's decoder and encoder tables (--header-table-size, --encoder-header-table-size). */
  server: number
  serverEncoder: number
  /** Our decoder's, announced in our SETTINGS. */
  client: number
}

/** Runs REQUESTS requests on one connection; resolves with each response's :status and content-length, by request. */
async function exchange(port: number, tables: Tables): Promise<string[]> {
  const socket: Socket = connect(port, HOST)
  const encoder = new HpackEncoder()
  const decoder = new HpackDecoder(tables.client)
  const answers: string[] = []
  let sent = 0
  let pending = Buffer.alloc(0)

  const send = (count: number) => {
    const frames: Buffer[] = []
    for (; count > 0 && sent < REQUESTS; count--, sent++) {
      encoder.start()
      encoder.field(':method', 'GET')
      encoder.field(':scheme', 'http')
      encoder.field(':authority', `${HOST}:${port}`)
      encoder.field(':path', `/${sent % FILES}.txt${sent % 3 === 0 ? '' : `?n=${sent}`}`)
      encoder.field('user-agent', 'drainpipe-hpack-test')
      encoder.field('authorization', 'Bearer a-secret-token')
      encoder.field('cookie', sent % 2 === 0 ? 'a=1' : 'session=0123456789abcdefghij')
      encoder.field('x-latin1', '\u00e9\u00ff')
      frames.push(frame(HEADERS, END_STREAM | END_HEADERS, 1 + 2 * sent, encoder.finish()))
    }
    socket.write(Buffer.concat(frames))
  }

  return new Promise<string[]>((resolve, reject) => {
    const fail = (error: Error) => {
      socket.destroy()
      reject(error)
    }
    socket.on('error', fail)
    socket.on('connect', () => {
      const settings = Buffer.alloc(6)
      settings.writeUInt16BE(SETTINGS_HEADER_TABLE_SIZE, 0)
      settings.writeUInt32BE(tables.client, 2)
      socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(SETTINGS, 0, 0, settings)]))
    })
    socket.on('data', (chunk: Buffer) => {
      try {
        pending = Buffer.concat([pending, chunk])
        while (pending.length >= 9 && pending.length >= 9 + pending.readUIntBE(0, 3)) {
          const length = pending.readUIntBE(0, 3)
          const [type, flags] = [pending[3]!, pending[4]!]
          const stream = pending.readUInt32BE(5) & 0x7fffffff
          let payload = pending.subarray(9, 9 + length)
          pending = pending.subarray(9 + length)
          if (type === SETTINGS && !(flags & ACK)) {
            for (let at = 0; at < payload.length; at += 6) {
              if (payload.readUInt16BE(at) === SETTINGS_HEADER_TABLE_SIZE) encoder.setMaxTableSize(payload.readUInt32BE(at + 2))
            }
            socket.write(frame(SETTINGS, ACK, 0, new Uint8Array(0)))
            if (sent === 0) send(IN_FLIGHT)
          } else if (type === HEADERS) {
            expect(flags & END_HEADERS, 'a response head in one frame').toBe(END_HEADERS)
            if (flags & PADDED) payload = payload.subarray(1, payload.length - payload[0]!)
            if (flags & PRIORITY) payload = payload.subarray(5)
            let status = ''
            let contentLength = ''
            decoder.decode(payload, (name, value) => {
              if (name === ':status') status = value
              if (name === 'content-length') contentLength = value
            })
            answers[(stream - 1) / 2] = `${status} ${contentLength}`
          } else if (type === RST_STREAM) {
            answers[(stream - 1) / 2] = `RST_STREAM ${payload.readUInt32BE(0)}`
          } else if (type === GOAWAY) {
            throw new Error(`GOAWAY, error ${payload.readUInt32BE(4)}: ${payload.subarray(8).toString()}`)
          }
          if (((type === DATA || type === HEADERS) && flags & END_STREAM) || type === RST_STREAM) {
            send(1)
            if (answers.filter(Boolean).length === REQUESTS) {
              socket.destroy()
              resolve(answers)
            }
          }
        }
      } catch (error) {
        fail(error as Error)
      }
    })
  })
}

describe.skipIf(nghttpd.skip)(`HPACK against nghttpd${nghttpd.note}`, () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'drainpipe-hpack-'))
    // File n holds n + 1 octets, so that content-length names the file.
    for (let n = 0; n < FILES; n++) await writeFile(join(dir, `${n}.txt`), 'x'.repeat(n + 1))
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  const cases: Tables[] = [
    { server: 4096, serverEncoder: 4096, client: 4096 },
    { server: 256, serverEncoder: 4096, client: 1024 },
    { server: 0, serverEncoder: 64, client: 0 },
    { server: 65536, serverEncoder: 65536, client: 65536 },
    { server: 4096, serverEncoder: 4096, client: 100 },
    { server: 4096, serverEncoder: 0, client: 4096 },
  ]
  it.each(cases.map((tables) => [`${tables.server}/${tables.serverEncoder}`, `${tables.client}`, tables] as const))(
    "nghttpd's decoder/encoder tables %s, ours %s",
    async (_, __, tables) => {
    nghttpd.check()
    let child: Child | undefined
    let port = 0
    for (let attempt = 0; child === undefined; attempt++) {
      port = await freePort(HOST)
      const args = ['--no-tls', '-a', HOST, '-d', dir, `--header-table-size=${tables.server}`, `--encoder-header-table-size=${tables.serverEncoder}`, String(port)]
      const candidate = start(NGHTTPD, args)
      await until(async () => !candidate.running || (await accepts(HOST, port)), `nghttpd on ${HOST}:${port}`)
      if (candidate.running) child = candidate
      else if (attempt === 2) throw new Error(`nghttpd did not start: ${candidate.output()}`)
    }
    try {
      const answers = await exchange(port, tables)
      expect(answers).toEqual(Array.from({ length: REQUESTS }, (_, i) => `200 ${(i % FILES) + 1}`))
    } finally {
      await stop(child, 'SIGTERM', 2000)
    }
  },
  )
})

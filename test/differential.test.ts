/**
 * Differential: the same requests through both engines, drainpipe's own
 * (`engine: 'wire'`) and node:http2's (`engine: 'node'`), against the same
 * servers, give the same outcome field by field: status, response header
 * object, body (length and SHA-256), trailers; or the same error (class,
 * code, HTTP/2 code, `unprocessed`).
 *
 * Servers: node:http2 (test/helpers/h2-server.ts with h2-routes.ts);
 * nghttpd and h2o when installed (TLS, files of several sizes; each skips
 * with the reason in its name otherwise); and the raw-frame server
 * (test/hostile/server.ts) for what no real server can be made to send. The
 * table covers methods, bodies of several sizes, repeated fields and
 * set-cookie both ways, trailers, 204/304/HEAD, 1xx, large downloads
 * byte-exact, content-length mismatches, resets before, during and after a
 * body, GOAWAYs around a response, and malformed responses. Where the
 * engines differ on purpose or for want of a way (what node:http2 does not
 * tell its adapter), the row says why and checks each engine's outcome.
 *
 * The file names both engines itself, so it runs once: in the vitest
 * project 'wire' (the 'node' project skips it, saying so).
 */
import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client, DrainpipeError, ProtocolError, type EngineName } from '../lib/index.js'
import { moreRoutes } from './helpers/h2-routes.js'
import { pattern, startBackend, tableLookup, type Backend } from './helpers/h2-server.js'
import { pki } from './helpers/pki.js'
import { accepts, freePort, requires, start, stop, until, type Child } from './helpers/processes.js'
import { encodeFrame, ErrorCode, Flag, FrameType, frames, headerBlock, startHostileServer, type HostileConnection, type HostileServer } from './hostile/server.js'

const ENGINES: readonly EngineName[] = ['wire', 'node']
const once = process.env.DRAINPIPE_ENGINE === 'node' ? ' (skipped in this project: the file runs both engines itself, in the project wire)' : ''

interface Row {
  name: string
  method?: string
  path: string
  headers?: Record<string, string | string[]>
  /** Request body: that many octets of `pattern`. */
  body?: number
  /** A difference the engines are known to have, and why: each engine's outcome is checked instead. */
  differs?: { why: string; wire: Outcome; node: Outcome }
}

/** What one request came to, as compared. */
type Outcome =
  | { status: number; headers: Record<string, unknown>; body: string; trailers: Record<string, unknown> }
  | { error: { class: string; code: string; http2Code: number | undefined; unprocessed: boolean } }

/** The outcome of a request that failed with `name` (`code`). */
function error(name: string, code: string, http2Code?: number, unprocessed = false): Outcome {
  return { error: { class: name, code, http2Code, unprocessed } }
}

/** Fields that differ between any two requests whatever the engine: the time, and which of the server's connections served it. */
const VOLATILE = ['date', 'x-connection']

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')

function errorOutcome(failure: unknown): Outcome {
  if (!(failure instanceof DrainpipeError)) throw new Error(`not a DrainpipeError: ${String(failure)}`, { cause: failure })
  return error(failure.constructor.name, failure.code, failure instanceof ProtocolError ? failure.http2Code : undefined, failure.unprocessed)
}

async function outcome(client: Client, origin: string, row: Row): Promise<Outcome> {
  try {
    const response = await client.request(`${origin}${row.path}`, {
      method: row.method ?? 'GET',
      headers: row.headers ?? {},
      body: row.body === undefined ? null : pattern(row.body),
    })
    const body = Buffer.from(await response.body.arrayBuffer())
    const headers: Record<string, unknown> = { ...response.headers }
    for (const name of VOLATILE) delete headers[name]
    return { status: response.statusCode, headers, body: `${body.length} ${sha256(body)}`, trailers: { ...response.trailers } }
  } catch (error) {
    return errorOutcome(error)
  }
}

interface Target {
  origin(): string
  host(): string
  /** headersTimeout and bodyTimeout: short enough that a request one engine leaves hanging shows as a difference, not a test that never ends. */
  timeout?: number
  /** New clients for every row: a connection one row broke (unknown to node:http2's adapter) must not slow the next. */
  fresh?: boolean
  /** Runs before each row (the raw-frame server picks its answer). */
  before?(row: Row): void
}

function client(engine: EngineName, target: Target): Client {
  const timeout = target.timeout ?? 5000
  return new Client({ engine, connect: { ca: pki.ca }, lookup: tableLookup({ 'api.test': [target.host()] }).lookup, headersTimeout: timeout, bodyTimeout: timeout })
}

const NODE_MAJOR = Number(process.versions.node.split('.')[0])

/**
 * Where node:http2 changed with the Node version: from Node 22 its nghttp2 ends
 * the whole connection on a malformed response (RFC 9113 §8.1.1 asks for a
 * stream error), and reports the connection errors Node 20's hid.
 */
function differsOnThisNode(row: Row): Row['differs'] {
  if (NODE_MAJOR < 22) return row.differs
  switch (row.name) {
    case 'content-length smaller than the body':
    case 'content-length 0 with a body':
    case 'a 204 with DATA':
    case 'DATA before the response head':
      return {
        why: 'from Node 22, node:http2 ends the connection on a malformed response; RFC 9113 §8.1.1 makes it a stream error',
        wire: error('ProtocolError', 'DRAINPIPE_PROTOCOL', ErrorCode.PROTOCOL_ERROR),
        node: error('ConnectionLostError', 'DRAINPIPE_CONNECTION_LOST'),
      }
    case 'an HPACK index beyond the tables (COMPRESSION_ERROR)':
      return undefined // Node 22 reports this connection error, as the wire engine does
    default:
      return row.differs
  }
}

/** Runs each row through both engines, at once, and compares. */
function compare(list: Row[], target: Target): void {
  const rows = list.map((row) => ({ ...row, differs: differsOnThisNode(row) }))
  // One client per engine for all rows, unless fresh ones are asked for.
  let shared: Client[] | undefined
  afterAll(() => Promise.all((shared ?? []).map((c) => c.destroy())))
  it.each(rows.map((row) => [`${row.name}${row.differs ? ` (differs: ${row.differs.why})` : ''}`, row] as const))('%s', async (_, row) => {
    target.before?.(row)
    const clients = target.fresh ? ENGINES.map((engine) => client(engine, target)) : (shared ??= ENGINES.map((engine) => client(engine, target)))
    try {
      const [wire, node] = await Promise.all(clients.map((c) => outcome(c, target.origin(), row)))
      if (row.differs === undefined) {
        expect(wire).toEqual(node)
      } else {
        expect(wire).toEqual(row.differs.wire)
        expect(node).toEqual(row.differs.node)
      }
    } finally {
      if (target.fresh) await Promise.all(clients.map((c) => c.destroy()))
    }
  })
}

const SIZES = [0, 1, 16_384, 16_385, 100_000, 1 << 20]

describe.skipIf(once !== '')(`both engines against node:http2${once}`, () => {
  let backend: Backend
  beforeAll(async () => {
    backend = await startBackend({ host: '127.0.0.71', handler: moreRoutes, name: 'differential' })
  })
  afterAll(() => backend.close())

  compare(
    [
      { name: 'GET', path: '/hello' },
      { name: 'HEAD of a response with content', method: 'HEAD', path: '/hello' },
      ...SIZES.map((size) => ({ name: `POST echoed, ${size} octets`, method: 'POST', path: '/echo', body: size, headers: { 'content-type': 'application/octet-stream' } })),
      { name: 'PUT, 2 MiB hashed by the server', method: 'PUT', path: '/hash', body: 2 << 20 },
      { name: 'DELETE', method: 'DELETE', path: '/hello' },
      { name: 'PATCH echoed', method: 'PATCH', path: '/echo', body: 300 },
      { name: 'OPTIONS', method: 'OPTIONS', path: '/hello' },
      { name: 'a method of our own (token)', method: 'PURGE', path: '/hello' },
      {
        name: 'request fields as the server reads them: repeats, cookies, case, user-agent',
        path: '/headers',
        headers: { 'x-multi': ['a', 'b'], cookie: ['a=1', 'b=2'], 'X-Upper': 'v', 'user-agent': 'differential', accept: '*/*' },
      },
      { name: 'response fields: set-cookie, repeats, single-value', path: '/cookies' },
      { name: 'trailers', path: '/trailers' },
      { name: '204', path: '/status?code=204' },
      { name: '304', path: '/status?code=304' },
      { name: '404', path: '/status?code=404' },
      { name: '500', path: '/status?code=500' },
      { name: '103 Early Hints, then 200', path: '/informational' },
      { name: '10 MiB download, byte-exact', path: '/bytes?size=10485760' },
      { name: 'content-length larger than the body', path: '/length?claim=20&send=10' },
      { name: 'content-length smaller than the body', path: '/length?claim=10&send=20' },
      { name: 'content-length 0 with a body', path: '/length?claim=0&send=5' },
      { name: 'reset before a response (INTERNAL_ERROR)', path: '/reset' },
      { name: 'REFUSED_STREAM on every attempt', path: '/refuse' },
      { name: 'RST_STREAM after END_STREAM: the response stands', path: '/end-then-reset?size=20000' },
      { name: 'not found', path: '/nowhere' },
    ],
    { origin: () => `https://api.test:${backend.port}`, host: () => backend.host },
  )
})

/** Files the native servers serve: sizes around frame and window boundaries. */
const FILES: Record<string, number> = { 'empty.txt': 0, 'one.txt': 1, 'frame.bin': 16_384, 'frame-plus.bin': 16_385, 'window.bin': 65_536, 'big.bin': 5 << 20 }

const fileRows: Row[] = [
  ...Object.keys(FILES).map((name) => ({ name: `GET /${name}`, path: `/${name}` })),
  { name: 'HEAD', method: 'HEAD', path: '/window.bin' },
  { name: 'not found', path: '/missing' },
  { name: 'not modified (if-modified-since)', path: '/one.txt', headers: { 'if-modified-since': 'Fri, 01 Jan 2100 00:00:00 GMT' } },
  { name: 'a range', path: '/window.bin', headers: { range: 'bytes=100-16483' } },
  { name: 'repeated request fields', path: '/one.txt', headers: { 'x-multi': ['a', 'b'], cookie: ['a=1', 'b=2'] } },
  // nghttpd echoes it; h2o answers 405 to a POST on a file, maybe before the upload ended.
  ...[1_000, 1 << 20].map((size) => ({ name: `POST of ${size} octets`, method: 'POST', path: '/one.txt', body: size })),
]

async function docroot(): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'drainpipe-differential-'))
  // Readable by a server that drops its privileges (h2o run as root serves as nobody).
  await chmod(dir, 0o755)
  for (const [name, size] of Object.entries(FILES)) await writeFile(join(dir, name), pattern(size))
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) }
}

const HOST = '127.0.0.72'
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))

/** Starts a native server on a free port (another if it lost the port), until it accepts. */
async function native(binary: string, args: (port: number) => string[]): Promise<{ child: Child; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort(HOST)
    const child = start(binary, args(port))
    await until(async () => !child.running || (await accepts(HOST, port)), `${binary} on ${HOST}:${port}`)
    if (child.running) return { child, port }
    if (attempt === 3) throw new Error(`${binary} did not start: ${child.output()}`)
  }
}

const nghttpd = requires('/usr/sbin/nghttpd', 'nghttp2-server')

describe.skipIf(once !== '' || nghttpd.skip)(`both engines against nghttpd${once}${nghttpd.note}`, () => {
  let server: { child: Child; port: number }
  let root: { dir: string; remove(): Promise<void> }
  beforeAll(async () => {
    nghttpd.check()
    root = await docroot()
    // Trailers on every response with content, uploads echoed, padding on every frame.
    const flags = ['--trailer', 'x-trailer: t1', '--echo-upload', '-b', '32', '-a', HOST, '-d', root.dir]
    server = await native('/usr/sbin/nghttpd', (port) => [...flags, String(port), fixture('api.test.key'), fixture('api.test.crt')])
  })
  afterAll(async () => {
    await stop(server.child)
    await root.remove()
  })
  compare(fileRows, { origin: () => `https://api.test:${server.port}`, host: () => HOST })
})

const h2o = requires('/usr/bin/h2o', 'h2o')

describe.skipIf(once !== '' || h2o.skip)(`both engines against h2o${once}${h2o.note}`, () => {
  let server: { child: Child; port: number }
  let root: { dir: string; remove(): Promise<void> }
  beforeAll(async () => {
    h2o.check()
    root = await docroot()
    const config = join(root.dir, 'h2o.conf')
    server = await native('/usr/bin/h2o', (port) => {
      writeFileSync(
        config,
        [
          'listen:',
          `  host: ${HOST}`,
          `  port: ${port}`,
          '  ssl:',
          `    certificate-file: ${fixture('api.test.crt')}`,
          `    key-file: ${fixture('api.test.key')}`,
          `error-log: ${join(root.dir, 'error.log')}`,
          'hosts:',
          '  default:',
          '    paths:',
          '      /:',
          `        file.dir: ${root.dir}`,
          '',
        ].join('\n'),
      )
      return ['-c', config]
    })
  })
  afterAll(async () => {
    await stop(server.child)
    await root.remove()
  })
  compare(fileRows, { origin: () => `https://api.test:${server.port}`, host: () => HOST })
})

/**
 * What a raw-frame server answers on a stream: frames node:http2, nghttpd
 * or h2o cannot be made to send (a reset in the middle of a body, a reset
 * after the head, a 100 before the response, GOAWAYs around a response).
 */
type Answer = (c: HostileConnection, id: number) => void

const answers: Record<string, Answer> = {
  'RST_STREAM(INTERNAL_ERROR) in the middle of a body': (c, id) => {
    c.write(frames.headers(id, [[':status', '200']]))
    c.write(frames.data(id, pattern(100)))
    c.write(frames.rstStream(id, ErrorCode.INTERNAL_ERROR))
  },
  'RST_STREAM(CANCEL) in the middle of a body': (c, id) => {
    c.write(frames.headers(id, [[':status', '200'], ['content-length', '1000']]))
    c.write(frames.data(id, pattern(500)))
    c.write(frames.rstStream(id, ErrorCode.CANCEL))
  },
  'RST_STREAM(REFUSED_STREAM) after the response head: processed, not retried': (c, id) => {
    c.write(frames.headers(id, [[':status', '200']]))
    c.write(frames.rstStream(id, ErrorCode.REFUSED_STREAM))
  },
  'RST_STREAM(NO_ERROR) after a complete response': (c, id) => {
    c.write(Buffer.concat([frames.headers(id, [[':status', '200']]), frames.data(id, 'complete', true), frames.rstStream(id, ErrorCode.NO_ERROR)]))
  },
  'RST_STREAM(NO_ERROR) before any response': (c, id) => c.write(frames.rstStream(id, ErrorCode.NO_ERROR)),
  '100 Continue, then the response': (c, id) => {
    c.write(Buffer.concat([frames.headers(id, [[':status', '100']]), frames.headers(id, [[':status', '200']]), frames.data(id, 'after 100', true)]))
  },
  'a response head in HEADERS and two CONTINUATIONs': (c, id) => {
    const block = headerBlock([[':status', '200'], ['x-long', 'v'.repeat(3000)], ['x-other', 'w']])
    c.write(
      Buffer.concat([
        encodeFrame(FrameType.HEADERS, 0, id, block.subarray(0, 1000)),
        frames.continuation(id, block.subarray(1000, 2000), false),
        frames.continuation(id, block.subarray(2000), true),
        frames.data(id, 'continued', true),
      ]),
    )
  },
  'padded HEADERS and DATA': (c, id) => {
    const padded = (type: number, flags: number, payload: Buffer) => encodeFrame(type, flags | Flag.PADDED, id, Buffer.concat([Buffer.from([7]), payload, Buffer.alloc(7)]))
    c.write(Buffer.concat([padded(FrameType.HEADERS, Flag.END_HEADERS, headerBlock([[':status', '200']])), padded(FrameType.DATA, Flag.END_STREAM, Buffer.from('padded'))]))
  },
  'trailers after a body': (c, id) => {
    c.write(Buffer.concat([frames.headers(id, [[':status', '200']]), frames.data(id, 'body'), frames.headers(id, [['x-trailer', 't'], ['grpc-status', '0']], { endStream: true })]))
  },
  'GOAWAY(NO_ERROR) that covers the stream, then its response': (c, id) => {
    c.write(Buffer.concat([frames.goaway(id), frames.headers(id, [[':status', '200']]), frames.data(id, 'below the GOAWAY', true)]))
  },
  'GOAWAY(NO_ERROR) below the stream, on every attempt': (c, id) => c.write(frames.goaway(id - 2 >= 0 ? id - 2 : 0)),
  'a response field with an uppercase name (malformed)': (c, id) => c.write(frames.headers(id, [[':status', '200'], ['X-Upper', 'v']], { endStream: true })),
  'a connection-specific response field (malformed)': (c, id) => c.write(frames.headers(id, [[':status', '200'], ['connection', 'keep-alive']], { endStream: true })),
  'two content-length fields that disagree (malformed)': (c, id) => c.write(frames.headers(id, [[':status', '200'], ['content-length', '1'], ['content-length', '2']], { endStream: true })),
  'a 204 with DATA': (c, id) => c.write(Buffer.concat([frames.headers(id, [[':status', '204']]), frames.data(id, 'no', true)])),
  'no :status (malformed)': (c, id) => c.write(frames.headers(id, [['x-only', 'v']], { endStream: true })),
  'a body that never ends': (c, id) => c.write(Buffer.concat([frames.headers(id, [[':status', '200']]), frames.data(id, 'and then nothing')])),
}

/**
 * Answers the engines treat differently, on purpose or for want of a way:
 * what node:http2 does not tell its adapter (lib/node-engine.ts, the
 * README's "Limits worth knowing").
 */
const differences: { name: string; answer: Answer; differs: NonNullable<Row['differs']> }[] = [
  {
    name: 'DATA before the response head',
    answer: (c, id) => c.write(frames.data(id, 'early', true)),
    differs: {
      why: 'nghttp2 treats it as a connection error it does not report; the node engine waits for headersTimeout',
      wire: error('ProtocolError', 'DRAINPIPE_PROTOCOL', ErrorCode.PROTOCOL_ERROR),
      node: error('HeadersTimeoutError', 'DRAINPIPE_HEADERS_TIMEOUT'),
    },
  },
  {
    name: 'an HPACK index beyond the tables (COMPRESSION_ERROR)',
    answer: (c, id) => c.write(encodeFrame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, id, Buffer.from([0xff, 0x7f]))),
    differs: {
      why: 'a connection error node:http2 does not report; the node engine waits for headersTimeout',
      wire: error('ConnectionLostError', 'DRAINPIPE_CONNECTION_LOST'),
      node: error('HeadersTimeoutError', 'DRAINPIPE_HEADERS_TIMEOUT'),
    },
  },
  {
    name: 'GOAWAY(PROTOCOL_ERROR) that covers the stream, then its response',
    answer: (c, id) => {
      c.write(Buffer.concat([frames.goaway(id, ErrorCode.PROTOCOL_ERROR, 'bye'), frames.headers(id, [[':status', '200']]), frames.data(id, 'below the GOAWAY', true)]))
    },
    differs: {
      why: 'node:http2 destroys the session on a GOAWAY with an error code; RFC 9113 §6.8 lets the streams below it finish',
      wire: { status: 200, headers: {}, body: `16 ${sha256(Buffer.from('below the GOAWAY'))}`, trailers: {} },
      node: error('ConnectionLostError', 'DRAINPIPE_CONNECTION_LOST'),
    },
  },
]


describe.skipIf(once !== '')(`both engines against a raw-frame server${once}`, () => {
  let server: HostileServer
  let answer: Answer = () => {}
  const byName = new Map<string, Answer>([...Object.entries(answers), ...differences.map(({ name, answer }) => [name, answer] as const)])
  beforeAll(async () => {
    server = await startHostileServer({ host: '127.0.0.73', script: (c) => void c.on('stream', (id) => answer(c, id)) })
  })
  afterAll(() => server.close())
  compare([...byName.keys()].map((name) => ({ name, path: '/', differs: differences.find((d) => d.name === name)?.differs })), {
    origin: () => `https://api.test:${server.port}`,
    host: () => server.host,
    timeout: 1000,
    fresh: true,
    before: (row) => (answer = byName.get(row.name)!),
  })
})

/**
 * Records the sessions test/wire/fuzz.test.ts replays: the wire engine
 * makes a fixed set of requests (h2c) to a real server through a TCP proxy
 * that keeps every byte the server sent, and the result is written to
 * test/wire/sessions/<name>.json (see ../sessions.ts for the format).
 *
 *   npx tsx test/wire/sessions/record.ts [name ...]
 *
 * Servers: node:http2 (test/helpers: many routes, a SETTINGS change, a
 * server PING, resets, GOAWAY at the end), nghttpd (padding, trailers,
 * small windows, a small HPACK table) and h2o (its own HPACK encoder and
 * frame layout; GOAWAY on SIGTERM). A server that is not installed is
 * skipped with a note. Re-record when the engine's request side changes
 * what a server answers (stream ids, settings we announce).
 */
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import net, { type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { startBackend } from '../../helpers/h2-server.js'
import { moreRoutes } from '../../helpers/h2-routes.js'
import { pattern } from '../../helpers/h2-server.js'
import { accepts, freePort, installed, start, stop, until, type Child } from '../../helpers/processes.js'
import { connect, request, type Recorder } from '../harness.js'
import { describeFrame, outcomeOf, requestBody, splitFrames, type Session, type SessionRequest } from '../sessions.js'

const HOST = '127.0.0.1'

interface Server {
  /** What the session file says about the server. */
  description: string
  port: number
  /** Ends the server (at most once, however often it is called); for h2o, this is what makes it send GOAWAY. */
  stop(): Promise<void>
}

interface Plan {
  name: string
  requests: SessionRequest[]
  ping: boolean
  /** Starts the server, or says why it cannot. */
  start(): Promise<Server | string>
  /**
   * How the session ends once every stream settled: the server ends it by
   * itself (GOAWAY); we close() it; or the server is stopped, which makes
   * it send its GOAWAY.
   */
  end: 'server' | 'client' | 'stop'
}

/** Files of several sizes for nghttpd and h2o; `pattern` bodies, so they compress to nothing. */
const FILES: Record<string, number> = { 'empty.txt': 0, 'one.txt': 1, 'small.txt': 100, 'page.html': 20_000, 'big.bin': 70_000 }

async function docroot(): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'drainpipe-sessions-'))
  // Readable by a server that drops its privileges (h2o run as root serves as nobody).
  await chmod(dir, 0o755)
  for (const [name, size] of Object.entries(FILES)) await writeFile(join(dir, name), pattern(size))
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) }
}

async function native(binary: string, args: (port: number) => string[], cleanup: () => Promise<void>, description: string): Promise<Server> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort(HOST)
    const child: Child = start(binary, args(port))
    await until(async () => !child.running || (await accepts(HOST, port)), `${binary} on ${HOST}:${port}`)
    if (child.running) {
      let stopped: Promise<void> | undefined
      return {
        description,
        port,
        stop: () => (stopped ??= stop(child, 'SIGTERM', 3000).then(cleanup)),
      }
    }
    if (attempt === 3) throw new Error(`${binary} did not start: ${child.output()}`)
  }
}

const staticRequests: SessionRequest[] = [
  ...Object.keys(FILES).map((name) => ({ method: 'GET', path: `/${name}` })),
  { method: 'HEAD', path: '/small.txt' },
  { method: 'GET', path: '/missing' },
  { method: 'GET', path: '/small.txt', headers: { 'if-modified-since': 'Fri, 01 Jan 2100 00:00:00 GMT' } },
  { method: 'GET', path: '/page.html', headers: { range: 'bytes=100-199' } },
  { method: 'POST', path: '/page.html', body: 40_000 },
]

const plans: Plan[] = [
  {
    name: 'node-http2',
    ping: true,
    end: 'server',
    requests: [
      { method: 'GET', path: '/hello' },
      { method: 'GET', path: '/cookies' },
      { method: 'POST', path: '/echo', headers: { 'content-type': 'application/octet-stream' }, body: 70_000 },
      { method: 'GET', path: '/bytes?size=40000' },
      { method: 'GET', path: '/trailers' },
      { method: 'HEAD', path: '/hello' },
      { method: 'GET', path: '/status?code=204' },
      { method: 'GET', path: '/status?code=304' },
      { method: 'GET', path: '/informational' },
      { method: 'GET', path: '/settings' },
      { method: 'GET', path: '/ping' },
      { method: 'GET', path: '/reset' },
      { method: 'GET', path: '/refuse' },
      { method: 'GET', path: '/end-then-reset?size=20000' },
      { method: 'GET', path: '/length?claim=10&send=20' },
      { method: 'GET', path: '/close-session' },
    ],
    async start() {
      const backend = await startBackend({ host: HOST, tls: false, handler: moreRoutes, name: 'recorded' })
      return { description: `node:http2 ${process.version}, h2c, test/helpers/h2-server.ts with h2-routes.ts`, port: backend.port, stop: () => backend.close() }
    },
  },
  {
    name: 'nghttpd',
    ping: true,
    end: 'client',
    requests: staticRequests,
    async start() {
      const binary = '/usr/sbin/nghttpd'
      if (!installed(binary)) return `${binary} missing (Debian nghttp2-server)`
      const root = await docroot()
      // Padding on every frame, trailers, echoed uploads, a 32 KiB stream window and a 256-octet HPACK table.
      const flags = ['-b', '64', '--trailer', 'x-trailer: t1', '--echo-upload', '-w', '15', '--encoder-header-table-size=256']
      return native(binary, (port) => ['--no-tls', '-a', HOST, '-d', root.dir, ...flags, String(port)], root.remove, `nghttpd (nghttp2), h2c, ${flags.join(' ')}`)
    },
  },
  {
    name: 'h2o',
    ping: true,
    end: 'stop',
    requests: staticRequests,
    async start() {
      const binary = '/usr/bin/h2o'
      if (!installed(binary)) return `${binary} missing (Debian h2o)`
      const root = await docroot()
      const config = join(root.dir, 'h2o.conf')
      return native(
        binary,
        (port) => {
          writeFileSync(config, `listen:\n  host: ${HOST}\n  port: ${port}\nerror-log: ${join(root.dir, 'error.log')}\nhosts:\n  default:\n    paths:\n      /:\n        file.dir: ${root.dir}\n`)
          return ['-c', config]
        },
        root.remove,
        'h2o, h2c, file.dir; SIGTERM after the streams ended (its graceful GOAWAY)',
      )
    },
  },
]

/** A TCP proxy that keeps what the server sent; resolves with it once both sides closed. */
async function recordingProxy(target: number): Promise<{ port: number; recorded: Promise<Buffer>; close(): void }> {
  const chunks: Buffer[] = []
  let done!: (bytes: Buffer) => void
  const recorded = new Promise<Buffer>((resolve) => (done = resolve))
  const proxy = net.createServer((client) => {
    proxy.close()
    const upstream = net.connect(target, HOST)
    upstream.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      client.write(chunk)
    })
    client.on('data', (chunk: Buffer) => upstream.write(chunk))
    upstream.on('end', () => client.end())
    client.on('end', () => upstream.end())
    const both = Promise.all([once(upstream, 'close'), once(client, 'close')])
    upstream.on('error', () => client.destroy())
    client.on('error', () => upstream.destroy())
    void both.then(() => done(Buffer.concat(chunks)))
  })
  proxy.listen(0, HOST)
  await once(proxy, 'listening')
  return { port: (proxy.address() as AddressInfo).port, recorded, close: () => proxy.close() }
}

async function record(plan: Plan): Promise<Session | string> {
  const server = await plan.start()
  if (typeof server === 'string') return server
  const proxy = await recordingProxy(server.port)
  try {
    const { connection } = await connect(HOST, proxy.port, { scheme: 'http' })
    const recorders: Recorder[] = plan.requests.map((r) =>
      request(connection, r.path, { method: r.method, scheme: 'http', headers: r.headers, body: requestBody(r) }),
    )
    if (plan.ping) connection.ping(() => {})
    await Promise.all(recorders.map((r) => r.settled))
    if (plan.end === 'client') connection.close()
    else if (plan.end === 'stop') await server.stop()
    const bytes = await proxy.recorded
    return {
      name: plan.name,
      server: server.description,
      requests: plan.requests,
      ping: plan.ping,
      outcomes: recorders.map(outcomeOf),
      frames: splitFrames(bytes).map(describeFrame),
      bytes: gzipSync(bytes, { level: 9 }).toString('base64'),
    }
  } finally {
    proxy.close()
    await server.stop()
  }
}

const wanted = process.argv.slice(2)
for (const plan of plans) {
  if (wanted.length > 0 && !wanted.includes(plan.name)) continue
  const session = await record(plan)
  if (typeof session === 'string') {
    console.log(`${plan.name}: skipped, ${session}`)
    continue
  }
  await writeFile(new URL(`${plan.name}.json`, import.meta.url), `${JSON.stringify(session, null, 2)}\n`)
  console.log(`${plan.name}: ${session.frames.length} frames, ${Buffer.from(session.bytes, 'base64').length} octets gzipped`)
}

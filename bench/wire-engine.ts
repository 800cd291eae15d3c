/**
 * CPU per small GET of the wire engine (lib/wire) against raw node:http2 on
 * the same server, and against a floor: a client that writes pre-encoded
 * requests and only counts the END_STREAM flags of what comes back (the cost
 * of the socket, TLS and the event loop, with no HTTP/2 work). The engine's
 * own cost is wire minus floor.
 *
 *   npx tsx bench/wire-engine.ts [--requests 30000] [--concurrency 100] [--runs 3] [--h2c]
 *
 * nghttpd serves (pinned to CPU 0); each client runs in its own process
 * pinned to CPU 1, warms up, then is measured with process.cpuUsage().
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import http2 from 'node:http2'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import tls from 'node:tls'
import { fileURLToPath } from 'node:url'
import { readFileSync } from 'node:fs'
import { realClock } from '../lib/clock.js'
import type { StreamHandler } from '../lib/engine.js'
import { connectWire } from '../lib/wire/connection.js'
import { Flag, FrameType, Setting } from '../lib/wire/frame.js'
import { FrameWriter } from '../lib/wire/frame-writer.js'
import { HpackEncoder } from '../lib/wire/hpack.js'
import { freePort, pinned, SMALL_BODY, which } from './nghttpd.js'

const here = fileURLToPath(import.meta.url)
const fixtures = path.join(path.dirname(here), '..', 'test', 'fixtures')
const args = process.argv.slice(2)
const option = (name: string, fallback: number) => {
  const index = args.indexOf(`--${name}`)
  return index === -1 ? fallback : Number(args[index + 1])
}
const h2c = args.includes('--h2c')
const CLIENTS = ['floor', 'wire', 'node:http2'] as const
type Client = (typeof CLIENTS)[number]

interface Measured {
  client: Client
  requests: number
  cpuMicros: number
  wallMs: number
}

// ── Child: one client, measured ────────────────────────────────────────────

async function measure(client: Client, port: number, requests: number, concurrency: number): Promise<Measured> {
  const run = await clients[client](port, concurrency)
  await run(Math.min(5_000, requests))
  const cpu = process.cpuUsage()
  const started = performance.now()
  await run(requests)
  const used = process.cpuUsage(cpu)
  return { client, requests, cpuMicros: (used.user + used.system) / requests, wallMs: performance.now() - started }
}

/** Each client: connect, then a function that runs `count` GETs with `concurrency` in flight. */
type Runner = (count: number) => Promise<void>
const scheme = h2c ? 'http' : 'https'
const ca = readFileSync(path.join(fixtures, 'ca.crt'))

function loop(concurrency: number, one: (done: () => void) => void): Runner {
  return (count) =>
    new Promise((resolve) => {
      let started = 0
      let finished = 0
      const done = () => {
        if (++finished === count) resolve()
        else if (started < count) start()
      }
      const start = () => {
        started++
        one(done)
      }
      for (let i = 0; i < Math.min(concurrency, count); i++) start()
    })
}

const clients: Record<Client, (port: number, concurrency: number) => Promise<Runner>> = {
  async wire(port, concurrency) {
    const url = new URL(`${scheme}://127.0.0.1:${port}`)
    const connection = await connectWire(
      {
        origin: url.origin,
        url,
        addresses: ['127.0.0.1'],
        tls: { ca, servername: 'api.test' },
        settings: { streamWindow: 1 << 20, connectionWindow: 4 << 20, maxHeaderListSize: 65_536, maxHeaderFields: 128 },
        clock: realClock,
      },
      new AbortController().signal,
    )
    connection.listen({ settings() {}, goaway() {}, error() {}, closed() {} })
    const head = { method: 'GET', scheme, authority: url.host, path: '/small.json', headers: {} } as const
    return loop(concurrency, (done) => {
      let received = 0
      const handler: StreamHandler = {
        response() {},
        data(chunk) {
          received += chunk.length
        },
        end() {
          if (received !== SMALL_BODY.length) throw new Error(`short body: ${received}`)
          done()
        },
        closed(why) {
          throw new Error(`stream closed: ${JSON.stringify(why)}`)
        },
        writable() {},
      }
      connection.open(head, true, handler)
    })
  },

  async 'node:http2'(port, concurrency) {
    const session = http2.connect(`${scheme}://127.0.0.1:${port}`, { ca, servername: 'api.test', settings: { enablePush: false, initialWindowSize: 1 << 20 } })
    await once(session, 'remoteSettings')
    session.setLocalWindowSize(4 << 20)
    return loop(concurrency, (done) => {
      let received = 0
      const stream = session.request({ ':path': '/small.json' })
      stream.on('response', () => {})
      stream.on('data', (chunk: Buffer) => (received += chunk.length))
      stream.on('end', () => {
        if (received !== SMALL_BODY.length) throw new Error(`short body: ${received}`)
        done()
      })
    })
  },

  async floor(port, concurrency) {
    const socket = h2c
      ? net.connect({ host: '127.0.0.1', port, noDelay: true })
      : tls.connect({ host: '127.0.0.1', port, ca, servername: 'api.test', ALPNProtocols: ['h2'] })
    await once(socket, h2c ? 'connect' : 'secureConnect')
    const writer = new FrameWriter()
    writer.preface()
    writer.settings([
      [Setting.ENABLE_PUSH, 0],
      [Setting.INITIAL_WINDOW_SIZE, 1 << 20],
    ])
    writer.windowUpdate(0, 2 ** 31 - 1 - 65_535)
    writer.flush(socket)
    // One field block, never indexed, so every request may reuse it.
    const encoder = new HpackEncoder(0)
    encoder.start()
    for (const [name, value] of [
      [':method', 'GET'],
      [':scheme', scheme],
      [':authority', `127.0.0.1:${port}`],
      [':path', '/small.json'],
    ]) {
      encoder.field(name!, value!)
    }
    const block = encoder.finish()
    let nextId = 1
    let flushScheduled = false
    const pending: (() => void)[] = []
    let tail: Buffer = Buffer.alloc(0)
    let settingsSeen = 0
    socket.on('data', (chunk: Buffer) => {
      let buffer = tail.length > 0 ? Buffer.concat([tail, chunk]) : chunk
      let offset = 0
      while (buffer.length - offset >= 9) {
        const length = buffer.readUIntBE(offset, 3)
        if (buffer.length - offset < 9 + length) break
        const type = buffer[offset + 3]!
        const flags = buffer[offset + 4]!
        if (type === FrameType.SETTINGS && !(flags & Flag.ACK)) settingsSeen++
        if ((type === FrameType.DATA || type === FrameType.HEADERS) && flags & Flag.END_STREAM) pending.shift()!()
        offset += 9 + length
      }
      tail = buffer.subarray(offset)
      buffer = tail
      if (settingsSeen > 0) {
        writer.settingsAck()
        settingsSeen = 0
      }
      writer.flush(socket)
    })
    const flush = () => {
      flushScheduled = false
      writer.flush(socket)
    }
    return loop(concurrency, (done) => {
      pending.push(done)
      writer.headers(nextId, block, true, 16_384)
      nextId += 2
      if (!flushScheduled) {
        flushScheduled = true
        process.nextTick(flush)
      }
    })
  },
}

// ── Parent: server, children, report ──────────────────────────────────────

async function child(client: Client, port: number, requests: number, concurrency: number): Promise<Measured> {
  const [command, commandArgs] = pinned(1, process.execPath, ['--import', 'tsx', here, '--child', client, '--port', String(port), '--requests', String(requests), '--concurrency', String(concurrency), ...(h2c ? ['--h2c'] : [])])
  const process_ = spawn(command, commandArgs, { stdio: ['ignore', 'pipe', 'inherit'] })
  let output = ''
  process_.stdout!.on('data', (chunk: Buffer) => (output += chunk))
  const [code] = (await once(process_, 'exit')) as [number]
  if (code !== 0) throw new Error(`${client} exited with ${code}`)
  return JSON.parse(output.trim().split('\n').at(-1)!) as Measured
}

async function startNghttpd(): Promise<{ port: number; stop: () => Promise<void> }> {
  const nghttpd = which('nghttpd')
  if (nghttpd === undefined) throw new Error('nghttpd is required (apt-get install nghttp2-server)')
  const docroot = await mkdtemp(path.join(os.tmpdir(), 'wire-bench-'))
  await writeFile(path.join(docroot, 'small.json'), SMALL_BODY)
  const port = await freePort()
  const tlsArgs = h2c ? ['--no-tls'] : []
  const files = h2c ? [] : [path.join(fixtures, 'api.test.key'), path.join(fixtures, 'api.test.crt')]
  const [command, commandArgs] = pinned(0, nghttpd, ['-d', docroot, '-a', '127.0.0.1', '-m', '128', ...tlsArgs, String(port), ...files])
  const server: ChildProcess = spawn(command, commandArgs, { stdio: ['ignore', 'ignore', 'inherit'] })
  for (let attempt = 0; ; attempt++) {
    const ok = await new Promise<boolean>((resolve) => {
      const probe = net.connect({ host: '127.0.0.1', port }, () => {
        probe.destroy()
        resolve(true)
      })
      probe.on('error', () => resolve(false))
    })
    if (ok) break
    if (attempt > 100) throw new Error('nghttpd did not listen')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return {
    port,
    async stop() {
      server.kill('SIGTERM')
      await once(server, 'exit')
      await rm(docroot, { recursive: true, force: true })
    },
  }
}

const childIndex = args.indexOf('--child')
if (childIndex !== -1) {
  const result = await measure(args[childIndex + 1] as Client, option('port', 0), option('requests', 30_000), option('concurrency', 100))
  console.log(JSON.stringify(result))
  process.exit(0)
} else {
  const requests = option('requests', 30_000)
  const concurrency = option('concurrency', 100)
  const runs = option('runs', 3)
  const server = await startNghttpd()
  const results = new Map<Client, Measured[]>(CLIENTS.map((client) => [client, []]))
  try {
    for (let run = 0; run < runs; run++) {
      for (let i = 0; i < CLIENTS.length; i++) {
        const client = CLIENTS[(i + run) % CLIENTS.length]!
        results.get(client)!.push(await child(client, server.port, requests, concurrency))
      }
    }
  } finally {
    await server.stop()
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!
  const floor = median(results.get('floor')!.map((r) => r.cpuMicros))
  console.log(`small GET (${SMALL_BODY.length} B body), ${requests} requests, ${concurrency} in flight, ${h2c ? 'h2c' : 'TLS'}, nghttpd; median of ${runs}`)
  console.log('client       CPU µs/req   above floor   req/s')
  for (const client of CLIENTS) {
    const cpu = median(results.get(client)!.map((r) => r.cpuMicros))
    const rate = median(results.get(client)!.map((r) => (r.requests / r.wallMs) * 1000))
    console.log(`${client.padEnd(12)} ${cpu.toFixed(1).padStart(10)}   ${(cpu - floor).toFixed(1).padStart(11)}   ${rate.toFixed(0).padStart(6)}`)
  }
}

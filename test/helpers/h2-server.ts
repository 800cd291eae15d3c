import { createHash } from 'node:crypto'
import http2, { type Http2SecureServer, type Http2Server, type Http2ServerRequest, type Http2ServerResponse, type ServerHttp2Session } from 'node:http2'
import type { AddressInfo } from 'node:net'
import type { LookupAddress } from 'node:dns'
import { pki } from './pki.js'

/** Answers a request; returning `false` falls through to the built-in routes. */
export type Handler = (
  req: Http2ServerRequest,
  res: Http2ServerResponse,
  context: { connection: number; backend: string },
) => boolean | void

export interface BackendOptions {
  host?: string
  port?: number
  /** A name for the backend, sent back as `x-backend` (defaults to the host). */
  name?: string
  tls?: boolean
  cert?: { cert: Buffer; key: Buffer }
  settings?: http2.Settings
  /** Answers requests before the built-in routes (return `false` to fall through). */
  handler?: Handler
  /** Delay (ms) before accepting each new connection's session (used to prove no request waits for a handshake). */
  acceptDelay?: number
  /**
   * Holds the `n`th TCP connection (1, 2, …) before the HTTP/2 server sees it until the returned promise
   * settles: a handshake that ends when the test says so, not after a time. Not with `acceptDelay`.
   */
  acceptWhen?: (n: number) => Promise<unknown>
  allowHTTP1?: boolean
}

export interface Backend {
  readonly host: string
  readonly port: number
  readonly name: string
  readonly server: Http2SecureServer | Http2Server
  readonly sessions: Set<ServerHttp2Session>
  /** Connections accepted so far. */
  connections: number
  /** Requests served so far. */
  requests: number
  /** POST ids recorded by /record, with how often each was processed. */
  readonly processed: Map<string, number>
  /** Sends GOAWAY on every open session. */
  goaway(code?: number, lastStreamId?: number, debug?: string): void
  close(): Promise<void>
}

const body = (req: Http2ServerRequest): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })

/** Built-in routes every test backend answers. */
function builtIn(req: Http2ServerRequest, res: Http2ServerResponse, backend: Backend): void {
  const url = new URL(`https://x${req.url}`)
  const route = url.pathname
  if (route === '/hello') {
    res.end('hello')
  } else if (route === '/echo') {
    res.setHeader('content-type', String(req.headers['content-type'] ?? 'application/octet-stream'))
    req.pipe(res)
  } else if (route === '/headers') {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify(req.headers))
  } else if (route === '/delay') {
    const ms = Number(url.searchParams.get('ms') ?? 100)
    void body(req).then(() => setTimeout(() => res.end('late'), ms))
  } else if (route === '/record') {
    // Records each POST id once per processing, so tests can prove exactly-once.
    void body(req).then((data) => {
      const id = url.searchParams.get('id') ?? data.toString()
      backend.processed.set(id, (backend.processed.get(id) ?? 0) + 1)
      const ms = Number(url.searchParams.get('ms') ?? 0)
      if (ms > 0) setTimeout(() => res.end(id), ms)
      else res.end(id)
    })
  } else if (route === '/bytes') {
    const size = Number(url.searchParams.get('size') ?? 1024)
    res.setHeader('content-length', size)
    writePattern(res, size)
  } else if (route === '/hash') {
    const hash = createHash('sha256')
    let size = 0
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      hash.update(chunk)
    })
    req.on('end', () => res.end(JSON.stringify({ size, sha256: hash.digest('hex') })))
  } else if (route === '/trailers') {
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.addTrailers({ 'grpc-status': '0', 'x-checksum': 'abc' })
    res.end('with trailers')
  } else if (route === '/never') {
    res.writeHead(200)
    res.write('start')
  } else if (route === '/reset') {
    res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR)
  } else if (route === '/refuse') {
    res.stream.close(http2.constants.NGHTTP2_REFUSED_STREAM)
  } else {
    res.writeHead(404)
    res.end('not found')
  }
}

/** The deterministic byte pattern /bytes sends (so downloads can be hashed on both ends). */
export function pattern(size: number): Buffer {
  const block = Buffer.alloc(64 * 1024)
  for (let i = 0; i < block.length; i++) block[i] = (i * 31 + 7) & 0xff
  const out = Buffer.alloc(size)
  for (let offset = 0; offset < size; offset += block.length) block.copy(out, offset, 0, Math.min(block.length, size - offset))
  return out
}

function writePattern(res: Http2ServerResponse, size: number): void {
  const block = pattern(Math.min(size, 64 * 1024))
  let sent = 0
  const pump = () => {
    while (sent < size) {
      const chunk = block.subarray(0, Math.min(block.length, size - sent))
      sent += chunk.length
      if (!res.write(chunk)) {
        res.once('drain', pump)
        return
      }
    }
    res.end()
  }
  pump()
}

/** A real node:http2 server (TLS by default) on a loopback address. */
export async function startBackend(options: BackendOptions = {}): Promise<Backend> {
  const host = options.host ?? '127.0.0.1'
  const tls = options.tls ?? true
  const cert = options.cert ?? pki.apiTest
  const serverOptions = { settings: options.settings, allowHTTP1: options.allowHTTP1 ?? false }
  const server = tls ? http2.createSecureServer({ ...serverOptions, ...cert }) : http2.createServer(serverOptions)
  const sessions = new Set<ServerHttp2Session>()
  const connectionIds = new WeakMap<ServerHttp2Session, number>()
  const backend: Backend = {
    host,
    port: 0,
    name: options.name ?? host,
    server,
    sessions,
    connections: 0,
    requests: 0,
    processed: new Map(),
    goaway(code = http2.constants.NGHTTP2_NO_ERROR, lastStreamId, debug) {
      for (const session of sessions) {
        if (session.closed || session.destroyed) continue
        session.goaway(code, lastStreamId ?? (session.state.lastProcStreamID ?? 0), debug ? Buffer.from(debug) : undefined)
      }
    },
    async close() {
      for (const session of sessions) session.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
  if (options.acceptDelay || options.acceptWhen) {
    // Hold every new TCP connection before the HTTP/2 server sees it.
    const delay = options.acceptDelay ?? 0
    const when = options.acceptWhen
    const listeners = server.listeners('connection') as ((socket: unknown) => void)[]
    let accepted = 0
    server.removeAllListeners('connection')
    server.on('connection', (socket: import('node:net').Socket) => {
      socket.pause()
      const hand = () => {
        for (const listener of listeners) listener.call(server, socket)
      }
      if (when) void when(++accepted).then(hand, hand)
      else setTimeout(hand, delay)
    })
  }
  server.on('session', (session: ServerHttp2Session) => {
    backend.connections++
    connectionIds.set(session, backend.connections)
    sessions.add(session)
    session.on('close', () => sessions.delete(session))
    session.on('error', () => {})
  })
  server.on('stream', (stream) => stream.on('error', () => {}))
  server.on('request', (req: Http2ServerRequest, res: Http2ServerResponse) => {
    backend.requests++
    const connection = connectionIds.get(req.stream.session as ServerHttp2Session) ?? 0
    res.setHeader('x-backend', backend.name)
    res.setHeader('x-connection', `${backend.name}#${connection}`)
    if (options.handler && options.handler(req, res, { connection, backend: backend.name }) !== false) return
    builtIn(req, res, backend)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  ;(backend as { port: number }).port = (server.address() as AddressInfo).port
  return backend
}

/** Several backends on 127.0.0.x sharing one port, as the pods behind a headless service. */
export async function startBackends(count: number, options: BackendOptions & { firstHost?: number } = {}): Promise<Backend[]> {
  const first = options.firstHost ?? 2
  for (let attempt = 0; ; attempt++) {
    const backends: Backend[] = []
    try {
      const leader = await startBackend({ ...options, host: `127.0.0.${first}` })
      backends.push(leader)
      for (let i = 1; i < count; i++) {
        backends.push(await startBackend({ ...options, host: `127.0.0.${first + i}`, port: leader.port }))
      }
      return backends
    } catch (error) {
      await Promise.all(backends.map((backend) => backend.close()))
      if (attempt >= 5) throw error
    }
  }
}

/** A resolver with Node's lookup signature over a table the test changes; counts its calls. */
export function tableLookup(table: Record<string, string[]>) {
  const calls: string[] = []
  let failure: NodeJS.ErrnoException | undefined
  const lookup = (
    hostname: string,
    _options: { all: true },
    callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
  ) => {
    calls.push(hostname)
    const addresses = table[hostname]
    queueMicrotask(() => {
      if (failure) callback(failure, [])
      else if (!addresses || addresses.length === 0) callback(Object.assign(new Error(`ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), [])
      else callback(null, addresses.map((address) => ({ address, family: 4 })))
    })
  }
  return {
    lookup,
    calls,
    set(hostname: string, addresses: string[]) {
      table[hostname] = addresses
    },
    fail(error: NodeJS.ErrnoException | undefined) {
      failure = error
    },
  }
}

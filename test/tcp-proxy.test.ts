import { once } from 'node:events'
import type { EventEmitter } from 'node:events'
import net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, describe, expect, it } from 'vitest'
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.js'

/** How long a negative assertion ("nothing happens") watches. */
const QUIET_MS = 200

interface EchoServer {
  port: number
  /** The server's side of every connection it accepted. */
  sockets: net.Socket[]
  /** Resolves when the handle of one of `sockets` is closed. */
  closed: Map<net.Socket, Promise<unknown>>
  server: net.Server
  nextSocket(): Promise<net.Socket>
  close(): Promise<void>
}

async function startEchoServer(): Promise<EchoServer> {
  const sockets: net.Socket[] = []
  const closed = new Map<net.Socket, Promise<unknown>>()
  const server = net.createServer((socket) => {
    sockets.push(socket)
    closed.set(socket, closeOf(socket))
    socket.on('error', () => {})
    socket.pipe(socket)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  return {
    port,
    sockets,
    closed,
    server,
    nextSocket: async () => (await once(server, 'connection'))[0] as net.Socket,
    close: async () => {
      for (const socket of sockets) socket.destroy()
      await Promise.all([new Promise<void>((resolve) => server.close(() => resolve())), ...closed.values()])
      // The listening handle is closed by libuv after close()'s callback, at
      // the end of a loop iteration: get past it so later handle counts are exact.
      for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve))
    },
  }
}

/**
 * Resolves when the socket's handle is closed. Take it early: `socket.closed`
 * turns true before the 'close' event, and `events.once` would reject on 'error'.
 */
function closeOf(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => socket.once('close', () => resolve()))
}

/**
 * For a test's own sockets: errors after the test (the proxy going away) are
 * ignored, and the returned cleanup destroys the socket and waits for its close.
 */
function disposer(socket: net.Socket): () => Promise<void> {
  socket.on('error', () => {})
  const closed = closeOf(socket)
  return () => {
    socket.destroy()
    return closed
  }
}

async function connect(port: number): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port })
  await once(socket, 'connect')
  return socket
}

/** Resolves with exactly the next `n` bytes the socket receives. */
function readBytes(socket: net.Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let length = 0
    const done = (err?: Error) => {
      socket.off('data', onData)
      socket.off('error', done)
      socket.off('end', onEnd)
      if (err) reject(err)
      else resolve(Buffer.concat(chunks))
    }
    const onData = (chunk: Buffer) => {
      chunks.push(chunk)
      length += chunk.length
      if (length >= n) done()
    }
    const onEnd = () => done(new Error(`stream ended after ${length} of ${n} bytes`))
    socket.on('data', onData)
    socket.on('error', done)
    socket.on('end', onEnd)
  })
}

/** The error the socket emits next (it must emit one). */
async function nextError(socket: net.Socket): Promise<NodeJS.ErrnoException> {
  const [err] = await once(socket, 'error')
  return err as NodeJS.ErrnoException
}

/**
 * The one bounded wait: records which of the given events fire within
 * QUIET_MS. Used only to assert that nothing arrives on a dead connection.
 */
async function eventsWithin(targets: [EventEmitter, string[]][]): Promise<string[]> {
  const seen: string[] = []
  const undo: (() => void)[] = []
  for (const [emitter, names] of targets) {
    for (const name of names) {
      const listener = () => seen.push(name)
      emitter.on(name, listener)
      undo.push(() => emitter.off(name, listener))
    }
  }
  await sleep(QUIET_MS)
  for (const u of undo) u()
  return seen
}

const tcpHandles = () => process.getActiveResourcesInfo().filter((r) => r.startsWith('TCP')).length

describe('startTcpProxy', () => {
  const cleanup: (() => unknown)[] = []
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn()
  })

  async function setup(): Promise<{ echo: EchoServer; proxy: TcpProxy }> {
    const echo = await startEchoServer()
    cleanup.push(() => echo.close())
    const proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: echo.port } })
    cleanup.push(() => proxy.close())
    return { echo, proxy }
  }

  /** Connects and waits until the proxy has accepted too (the two events race, so listen first). */
  async function client(proxy: TcpProxy): Promise<net.Socket> {
    const accepted = proxy.nextConnection()
    const socket = await connect(proxy.port)
    cleanup.push(disposer(socket))
    await accepted
    return socket
  }

  it('forwards both ways, passes half-close on, and counts', async () => {
    const { echo, proxy } = await setup()
    expect(proxy.host).toBe('127.0.0.1')
    expect(proxy.port).toBeGreaterThan(0)
    expect(proxy.mode()).toBe('forward')

    const accepted = proxy.nextConnection()
    const upstream = echo.nextSocket()
    const c = await client(proxy)
    expect(await accepted).toEqual({ id: 1, refused: false, dead: false })
    await upstream

    c.write('hello')
    expect((await readBytes(c, 5)).toString()).toBe('hello')
    expect(proxy.bytesDelivered).toEqual({ clientToServer: 5, serverToClient: 5 })

    // Enough to fill socket buffers on the way, so pause/resume is exercised.
    const big = Buffer.alloc(8 * 1024 * 1024)
    for (let i = 0; i < big.length; i += 4) big.writeUInt32LE(i, i)
    const echoed = readBytes(c, big.length)
    c.write(big)
    expect((await echoed).equals(big)).toBe(true)
    expect(proxy.bytesDelivered).toEqual({ clientToServer: 5 + big.length, serverToClient: 5 + big.length })
    expect(proxy.bytesDiscarded).toEqual({ clientToServer: 0, serverToClient: 0 })
    expect(proxy.connections).toBe(1)
    expect(proxy.open).toBe(1)

    // Client FIN reaches the echo server, which ends too; the proxy's connection then closes.
    const closed = once(proxy, 'connectionClose')
    c.end()
    await once(c, 'end')
    expect(await closed).toEqual([1])
    expect(proxy.open).toBe(0)
    expect(proxy.connections).toBe(1)
  })

  it('onConnection calls back for every connection until unsubscribed', async () => {
    const { proxy } = await setup()
    const ids: number[] = []
    const off = proxy.onConnection((info) => ids.push(info.id))
    await client(proxy)
    await client(proxy)
    off()
    await client(proxy)
    expect(ids).toEqual([1, 2])
    expect(proxy.connections).toBe(3)
  })

  it('blackhole: an existing connection goes silent both ways and stays open', async () => {
    const { echo, proxy } = await setup()
    const upstream = echo.nextSocket()
    const c = await client(proxy)
    const s = await upstream
    c.write('ping')
    expect((await readBytes(c, 4)).toString()).toBe('ping')
    const before = proxy.bytesDelivered

    proxy.mode('blackhole')
    const fromClient = once(proxy, 'discard')
    c.write('lost')
    expect(await fromClient).toEqual([{ id: 1, direction: 'clientToServer', bytes: 4 }])
    const fromServer = once(proxy, 'discard')
    s.write('pushed')
    expect(await fromServer).toEqual([{ id: 1, direction: 'serverToClient', bytes: 6 }])
    // A FIN from either side is swallowed too.
    c.end()

    const seen = await eventsWithin([
      [c, ['data', 'end', 'close', 'error']],
      [s, ['data', 'end', 'close', 'error']],
    ])
    expect(seen).toEqual([])
    expect(c.destroyed).toBe(false)
    expect(s.destroyed).toBe(false)
    expect(proxy.bytesDelivered).toEqual(before)
    expect(proxy.bytesDiscarded).toEqual({ clientToServer: 4, serverToClient: 6 })
    expect(proxy.open).toBe(1)
  })

  it('blackhole: a new connection is accepted, never reaches the target, and gets nothing', async () => {
    const { echo, proxy } = await setup()
    proxy.mode('blackhole')
    const accepted = proxy.nextConnection()
    const c = await client(proxy)
    expect(await accepted).toEqual({ id: 1, refused: false, dead: true })

    const discarded = once(proxy, 'discard')
    c.write('anyone?')
    expect(await discarded).toEqual([{ id: 1, direction: 'clientToServer', bytes: 7 }])
    const seen = await eventsWithin([
      [c, ['data', 'end', 'close', 'error']],
      [echo.server, ['connection']],
    ])
    expect(seen).toEqual([])
    expect(echo.sockets).toHaveLength(0)
    expect(proxy.bytesDelivered).toEqual({ clientToServer: 0, serverToClient: 0 })
  })

  it('back to forward: dead connections stay dead, new connections flow', async () => {
    const { proxy } = await setup()
    const dead = await client(proxy)
    dead.write('a')
    await readBytes(dead, 1)
    proxy.mode('blackhole')
    proxy.mode('forward')

    const discarded = once(proxy, 'discard')
    dead.write('still dead')
    expect(await discarded).toEqual([{ id: 1, direction: 'clientToServer', bytes: 10 }])

    const live = await client(proxy)
    live.write('alive')
    expect((await readBytes(live, 5)).toString()).toBe('alive')

    expect(await eventsWithin([[dead, ['data', 'end', 'close', 'error']]])).toEqual([])
    expect(proxy.bytesDelivered).toEqual({ clientToServer: 6, serverToClient: 6 })
  })

  it('refuse: new connections are reset, live ones keep forwarding', async () => {
    const { proxy } = await setup()
    const live = await client(proxy)
    proxy.mode('refuse')

    const accepted = proxy.nextConnection()
    const refused = net.connect({ host: '127.0.0.1', port: proxy.port })
    cleanup.push(disposer(refused))
    const err = await nextError(refused)
    expect(err.code).toBe('ECONNRESET')
    expect(await accepted).toEqual({ id: 2, refused: true, dead: false })
    expect(proxy.connections).toBe(2)
    expect(proxy.open).toBe(1)

    live.write('still here')
    expect((await readBytes(live, 10)).toString()).toBe('still here')

    proxy.mode('forward')
    const again = await client(proxy)
    again.write('ok')
    expect((await readBytes(again, 2)).toString()).toBe('ok')
  })

  it('reset(): both sides of every connection, dead ones included, get ECONNRESET', async () => {
    const { echo, proxy } = await setup()
    const upstream = echo.nextSocket()
    const c = await client(proxy)
    const s = await upstream
    c.write('x')
    await readBytes(c, 1)
    proxy.mode('blackhole')
    const d = await client(proxy)
    expect(proxy.open).toBe(2)

    const errors = Promise.all([nextError(c), nextError(s), nextError(d)])
    const closes = Promise.all([once(proxy, 'connectionClose'), once(proxy, 'connectionClose')])
    proxy.reset()
    expect((await errors).map((e) => e.code)).toEqual(['ECONNRESET', 'ECONNRESET', 'ECONNRESET'])
    await closes
    expect(proxy.open).toBe(0)
  })

  it('forward: a target that refuses the connection resets the client', async () => {
    const gone = net.createServer()
    gone.listen(0, '127.0.0.1')
    await once(gone, 'listening')
    const { port } = gone.address() as net.AddressInfo
    await new Promise<void>((resolve) => gone.close(() => resolve()))
    const proxy = await startTcpProxy({ target: { host: '127.0.0.1', port } })
    cleanup.push(() => proxy.close())

    const accepted = proxy.nextConnection()
    const c = net.connect({ host: '127.0.0.1', port: proxy.port })
    cleanup.push(disposer(c))
    const closed = once(proxy, 'connectionClose')
    expect((await nextError(c)).code).toBe('ECONNRESET')
    expect(await accepted).toEqual({ id: 1, refused: false, dead: false })
    await closed
    expect(proxy.open).toBe(0)
  })

  it('close() stops listening and leaves no TCP handles behind', async () => {
    const echo = await startEchoServer()
    cleanup.push(() => echo.close())
    const baseline = tcpHandles()

    const proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: echo.port } })
    const upstream = echo.nextSocket()
    const live = await connect(proxy.port)
    live.on('error', () => {})
    const liveClosed = closeOf(live)
    const s = await upstream
    live.write('y')
    await readBytes(live, 1)
    proxy.mode('blackhole')
    const accepted = proxy.nextConnection()
    const dead = await connect(proxy.port)
    dead.on('error', () => {})
    const deadClosed = closeOf(dead)
    await accepted
    expect(tcpHandles()).toBeGreaterThan(baseline)

    await proxy.close()
    expect(proxy.open).toBe(0)
    // The peers see the proxy go away; wait for them to close their ends.
    await Promise.all([liveClosed, deadClosed, echo.closed.get(s)])
    expect(tcpHandles()).toBe(baseline)

    const refused = net.connect({ host: '127.0.0.1', port: proxy.port })
    const refusedClosed = closeOf(refused)
    expect((await nextError(refused)).code).toBe('ECONNREFUSED')
    await refusedClosed
    expect(tcpHandles()).toBe(baseline)
  })
})

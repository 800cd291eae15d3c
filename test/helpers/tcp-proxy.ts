import { EventEmitter, once } from 'node:events'
import net from 'node:net'

/**
 * A TCP proxy for liveness tests: it forwards, or makes connections die
 * silently (NAT state dropped, a frozen peer), or resets them.
 *
 * Modes (`proxy.mode(m)`):
 * - `forward`: bytes flow both ways with pipe semantics (a side is paused while
 *   the other side's write buffer is full), FIN and RST are passed on.
 * - `blackhole`: every connection, existing and new, becomes **dead**: it stays
 *   open, bytes from both sides are accepted and delivered to nobody, and
 *   nothing is passed on (no FIN, no RST, in either direction). A connection
 *   accepted while blackholed is not connected to the target at all (the SYN
 *   never got through). Bytes are read and discarded rather than left unread:
 *   simpler, it counts them (`bytesDiscarded`, the `discard` event) so tests can
 *   wait on "the proxy got it" instead of sleeping, and what liveness code sees
 *   is the same (no reply, no close); the one difference is that the sender's
 *   writes never stall on a full TCP window.
 * - `refuse`: new connections are reset (RST) as soon as they are accepted;
 *   live connections keep forwarding.
 *
 * Going back to `forward` affects only new connections: a connection that went
 * dead stays dead until it is closed by its client or by `reset()`/`close()`.
 * Reviving it would hand the receiver a stream with a hole in it (the bytes
 * discarded meanwhile were already acknowledged, so TCP cannot retransmit them),
 * which no real network does; and a liveness test does not depend on whether it
 * switches back before or after the client gave up on the connection.
 */
export type ProxyMode = 'forward' | 'blackhole' | 'refuse'

export type Direction = 'clientToServer' | 'serverToClient'

export interface ConnectionInfo {
  /** 1, 2, … in order of acceptance (refused connections included). */
  id: number
  /** Reset at once because the proxy was in `refuse` mode. */
  refused: boolean
  /** Accepted in `blackhole` mode (dead from the start, never connected to the target). */
  dead: boolean
}

export interface DiscardInfo {
  id: number
  direction: Direction
  bytes: number
}

export interface ByteCounts {
  clientToServer: number
  serverToClient: number
}

export interface TcpProxyEvents {
  /** A TCP connection was accepted (after it was reset, if refused). */
  connection: [info: ConnectionInfo]
  /** Both sockets of a proxied connection are closed. */
  connectionClose: [id: number]
  /** Bytes were read from a dead connection and thrown away. */
  discard: [info: DiscardInfo]
}

export interface TcpProxyOptions {
  target: { host: string; port: number }
  /** Listen address; loopback by default. */
  host?: string
  /** Listen port; 0 (any free port) by default. */
  port?: number
}

interface Side {
  socket: net.Socket
  /** Resolves when the socket's handle is closed. */
  done: Promise<void>
  /** FIN received from this socket. */
  readEnded: boolean
  /** FIN sent to this socket by the proxy. */
  endSent: boolean
  closed: boolean
  /** Closed by an error (RST, refused connect, …) rather than by two FINs. */
  failed: boolean
}

interface Link {
  id: number
  client: Side
  /** Null for a connection accepted while blackholed. */
  server: Side | null
  dead: boolean
}

const side = (socket: net.Socket): Side => ({
  socket,
  done: whenClosed(socket),
  readEnded: false,
  endSent: false,
  closed: false,
  failed: false,
})

/** RST if the socket is connected; a plain destroy if it is still connecting. */
function resetSocket(socket: net.Socket): void {
  if (socket.destroyed) return
  if (socket.connecting) socket.destroy()
  else socket.resetAndDestroy()
}

/**
 * Resolves on the socket's 'close' event, i.e. once its handle is closed.
 * Take it early: `socket.closed` turns true before that event is emitted.
 */
function whenClosed(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => socket.once('close', () => resolve()))
}

/**
 * `server.close()` calls back before libuv has closed the listening handle (it
 * is still counted by `process.getActiveResourcesInfo()` until then). libuv
 * runs close callbacks at the end of a loop iteration; two `setImmediate` hops
 * take us past the end of the iteration in which the close was requested,
 * whatever phase that was.
 */
async function handleClosesRun(): Promise<void> {
  for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve))
}

export class TcpProxy extends EventEmitter<TcpProxyEvents> {
  readonly host: string
  readonly port: number
  readonly #server: net.Server
  readonly #target: { host: string; port: number }
  readonly #links = new Set<Link>()
  /** Refused sockets until their handle is closed. */
  readonly #refused = new Map<net.Socket, Promise<void>>()
  #mode: ProxyMode = 'forward'
  #accepted = 0
  #closing: Promise<void> | null = null
  readonly #delivered: ByteCounts = { clientToServer: 0, serverToClient: 0 }
  readonly #discarded: ByteCounts = { clientToServer: 0, serverToClient: 0 }

  /** Use `startTcpProxy()`. */
  constructor(server: net.Server, target: { host: string; port: number }) {
    super()
    this.#server = server
    this.#target = target
    const address = server.address()
    if (address === null || typeof address === 'string') throw new Error('proxy is not listening on TCP')
    this.host = address.address
    this.port = address.port
    server.on('connection', (socket) => this.#accept(socket))
  }

  /** Sets the mode (see the module comment) and returns it; without argument returns the current one. */
  mode(m?: ProxyMode): ProxyMode {
    if (m === undefined || m === this.#mode) return this.#mode
    this.#mode = m
    if (m === 'blackhole') {
      for (const link of this.#links) {
        link.dead = true
        this.#updateFlow(link)
      }
    }
    return m
  }

  /** Connections accepted so far (refused ones included). */
  get connections(): number {
    return this.#accepted
  }

  /** Proxied connections with at least one of their sockets still open. */
  get open(): number {
    return this.#links.size
  }

  /** Bytes written to the other side, per direction. */
  get bytesDelivered(): ByteCounts {
    return { ...this.#delivered }
  }

  /** Bytes read from dead connections and thrown away, per direction. */
  get bytesDiscarded(): ByteCounts {
    return { ...this.#discarded }
  }

  /** Calls `cb` on every accepted connection; returns the unsubscribe function. */
  onConnection(cb: (info: ConnectionInfo) => void): () => void {
    this.on('connection', cb)
    return () => this.off('connection', cb)
  }

  /** The next accepted connection. */
  async nextConnection(): Promise<ConnectionInfo> {
    const [info] = await once(this, 'connection')
    return info
  }

  /** Resets (TCP RST) both sockets of every current connection, dead ones included. */
  reset(): void {
    for (const link of this.#links) {
      resetSocket(link.client.socket)
      if (link.server) resetSocket(link.server.socket)
    }
  }

  /** Stops listening, destroys every connection, and resolves when all their handles are closed. */
  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #close(): Promise<void> {
    const serverClosed = new Promise<void>((resolve) => this.#server.close(() => resolve()))
    const closed: Promise<void>[] = [serverClosed]
    for (const [socket, done] of this.#refused) {
      socket.destroy()
      closed.push(done)
    }
    for (const link of this.#links) {
      for (const s of [link.client, link.server]) {
        if (s === null) continue
        s.socket.destroy()
        closed.push(s.done)
      }
    }
    await Promise.all(closed)
    await handleClosesRun()
  }

  #accept(socket: net.Socket): void {
    const id = ++this.#accepted
    socket.on('error', () => {})
    if (this.#closing) {
      socket.destroy()
      return
    }
    if (this.#mode === 'refuse') {
      this.#refused.set(
        socket,
        whenClosed(socket).then(() => {
          this.#refused.delete(socket)
        }),
      )
      socket.resetAndDestroy()
      this.emit('connection', { id, refused: true, dead: false })
      return
    }
    socket.setNoDelay(true)
    const dead = this.#mode === 'blackhole'
    const link: Link = { id, client: side(socket), server: null, dead }
    this.#links.add(link)
    if (!dead) {
      const upstream = net.connect({ host: this.#target.host, port: this.#target.port, allowHalfOpen: true })
      upstream.setNoDelay(true)
      link.server = side(upstream)
      this.#wire(link, link.server, link.client, 'serverToClient')
    }
    this.#wire(link, link.client, link.server, 'clientToServer')
    this.emit('connection', { id, refused: false, dead })
  }

  #wire(link: Link, src: Side, dst: Side | null, direction: Direction): void {
    const { socket } = src
    socket.on('error', () => {
      src.failed = true
    })
    socket.on('data', (chunk: Buffer) => {
      if (link.dead || dst === null || dst.endSent || dst.socket.destroyed) {
        this.#discarded[direction] += chunk.length
        this.emit('discard', { id: link.id, direction, bytes: chunk.length })
        return
      }
      this.#delivered[direction] += chunk.length
      if (!dst.socket.write(chunk)) socket.pause()
    })
    // The other side's buffer has room again: let this side's bytes flow.
    socket.on('drain', () => this.#updateFlow(link))
    socket.on('end', () => {
      src.readEnded = true
      this.#propagate(link)
    })
    socket.on('close', (hadError) => {
      src.closed = true
      if (hadError) src.failed = true
      this.#propagate(link)
      if (link.client.closed && (link.server === null || link.server.closed)) {
        this.#links.delete(link)
        this.emit('connectionClose', link.id)
      }
    })
  }

  /** Pauses a side while the other side's write buffer is full; a dead link reads (and discards) everything. */
  #updateFlow(link: Link): void {
    const { client, server } = link
    if (server === null) {
      client.socket.resume()
      return
    }
    for (const [src, dst] of [
      [client, server],
      [server, client],
    ] as const) {
      if (!link.dead && dst.socket.writableNeedDrain && !dst.socket.destroyed) src.socket.pause()
      else src.socket.resume()
    }
  }

  /** Passes FIN and RST on from one side to the other; nothing passes on a dead link. */
  #propagate(link: Link): void {
    const { client, server } = link
    if (link.dead || server === null) return
    for (const [src, dst] of [
      [client, server],
      [server, client],
    ] as const) {
      if (dst.socket.destroyed) continue
      if (src.failed) resetSocket(dst.socket)
      else if (src.closed) dst.socket.destroySoon()
      else if (src.readEnded && !dst.endSent) {
        dst.endSent = true
        dst.socket.end()
      }
    }
  }
}

/** Starts a proxy to `target`, listening on loopback and a free port unless told otherwise. */
export async function startTcpProxy(options: TcpProxyOptions): Promise<TcpProxy> {
  const { target, host = '127.0.0.1', port = 0 } = options
  const server = net.createServer({ allowHalfOpen: true })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  return new TcpProxy(server, { ...target })
}

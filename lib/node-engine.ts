/**
 * The node:http2 adapter: the engine seam (`engine.ts`) over Node's own
 * HTTP/2 client, and the only file in lib/ that imports `node:http2`.
 *
 * What node:http2 does not let it see is reported as unknown rather than
 * guessed: who reset a stream (the server, or nghttp2 for a malformed
 * response), connection errors nghttp2 detects and handles without an event,
 * and streams below a GOAWAY that carries an error code (Node destroys the
 * session then: they are reported lost).
 */
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2'
import type net from 'node:net'
import { dialSocket } from './dial.js'
import type { Clock } from './clock.js'
import {
  type Connection,
  type ConnectionListener,
  type Engine,
  Http2ErrorCode,
  type RequestHead,
  type ResponseHeaders,
  type Stream,
  type StreamHandler,
} from './engine.js'
import { ConnectError, ConnectionLostError, InvalidHeaderError, ProtocolError, ReadOnlyError } from './errors.js'
import { SlotSet, type Slotted } from './slot-set.js'

export const nodeEngine: Engine = {
  name: 'node',
  async connect(target, signal) {
    const { socket, address } = await dialSocket(target, signal)
    return new Promise<Connection>((resolve, reject) => {
      const session = http2.connect(target.origin, {
        createConnection: () => socket,
        settings: {
          enablePush: false,
          initialWindowSize: target.settings.streamWindow,
          maxHeaderListSize: target.settings.maxHeaderListSize,
        },
        maxHeaderListPairs: target.settings.maxHeaderFields,
      })
      const fail = (error: Error) => {
        signal.removeEventListener('abort', onAbort)
        session.destroy()
        socket.destroy()
        reject(error)
      }
      const onAbort = () => fail(signal.reason as Error)
      const onEarlyError = (error: Error) =>
        fail(new ConnectError(`HTTP/2 session to ${target.origin} at ${address} failed: ${error.message}`, { cause: error }))
      const onEarlyClose = () => fail(new ConnectError(`${target.origin} at ${address} closed the connection before its SETTINGS`))
      session.once('error', onEarlyError)
      session.once('close', onEarlyClose)
      session.once('remoteSettings', () => {
        signal.removeEventListener('abort', onAbort)
        session.off('error', onEarlyError)
        session.off('close', onEarlyClose)
        session.setLocalWindowSize(target.settings.connectionWindow)
        resolve(new NodeConnection(session, socket, address, target.clock))
      })
      if (signal.aborted) onAbort()
      else signal.addEventListener('abort', onAbort, { once: true })
    })
  },
}

/** node:http2 throws synchronously on some inputs: typed errors instead. */
function openFailure(error: NodeJS.ErrnoException): Error {
  switch (error.code) {
    case 'ERR_HTTP2_GOAWAY_SESSION':
    case 'ERR_HTTP2_INVALID_SESSION':
    case 'ERR_HTTP2_OUT_OF_STREAMS':
      return new ReadOnlyError(`The connection no longer accepts streams (${error.code}); the request was not processed`)
    case 'ERR_HTTP2_INVALID_HEADER_VALUE':
    case 'ERR_INVALID_HTTP_TOKEN':
    case 'ERR_INVALID_CHAR':
    case 'ERR_HTTP2_HEADER_SINGLE_VALUE':
    case 'ERR_HTTP2_INVALID_CONNECTION_HEADERS':
    case 'ERR_HTTP2_INVALID_PSEUDOHEADER':
      return new InvalidHeaderError(String((error as { header?: string }).header ?? 'unknown'), error.message)
    default:
      return new ProtocolError(`node:http2 refused the request: ${error.message}`, { cause: error, unprocessed: true })
  }
}

/** Response headers without pseudo-headers, in the seam's shape (the wire engine's tests compare theirs with it). */
export function responseHeaders(headers: IncomingHttpHeaders): ResponseHeaders {
  const result: ResponseHeaders = {}
  for (const name of Object.keys(headers)) {
    if (name.charCodeAt(0) === 58 /* ':' */) continue
    const value = headers[name]
    if (value === undefined) continue
    // A header the server named __proto__ is data, not this object's prototype.
    if (name === '__proto__') Object.defineProperty(result, name, { value, enumerable: true, writable: true, configurable: true })
    else result[name] = value
  }
  return result
}

class NodeConnection implements Connection {
  readonly address: string
  lastReceivedAt: number
  readonly #session: ClientHttp2Session
  readonly #socket: net.Socket
  readonly #clock: Clock
  readonly #streams = new SlotSet<NodeStream>()
  #listener: ConnectionListener | undefined
  #goawayLastStreamId = Infinity
  #lost: Error | undefined
  #closing = false
  #reportedClosed = false

  constructor(session: ClientHttp2Session, socket: net.Socket, address: string, clock: Clock) {
    this.#session = session
    this.#socket = socket
    this.address = address
    this.#clock = clock
    this.lastReceivedAt = clock.now()
    session.on('remoteSettings', () => {
      this.received()
      this.#listener?.settings()
    })
    session.on('goaway', (errorCode: number, lastStreamId: number, debug: Buffer | undefined) => {
      this.received()
      this.#goawayLastStreamId = Math.min(this.#goawayLastStreamId, lastStreamId)
      // node:http2 closes the session right after this event, and a closed session sends no
      // PING: a draining connection would go unprobed. We close it ourselves once drained.
      if (errorCode === Http2ErrorCode.NO_ERROR) session.close = () => {}
      this.#listener?.goaway({ errorCode, lastStreamId, debug: debug ?? Buffer.alloc(0) })
    })
    // A protocol violation or a flood: node:http2 destroys the session at once, well before 'close'.
    session.on('error', (error: Error) => this.#fail(error))
    session.on('close', () => this.#closed())
    socket.on('error', (error: Error) => {
      this.#lost ??= error
    })
  }

  get maxConcurrentStreams(): number {
    return this.#session.remoteSettings.maxConcurrentStreams ?? Infinity
  }

  get activeStreams(): number {
    return this.#streams.size
  }

  get accepting(): boolean {
    const session = this.#session
    return !this.#closing && this.#goawayLastStreamId === Infinity && !session.closed && !session.destroyed
  }

  /** Why the connection failed, if it did: `fallback` (the stream's own error) when nothing better is known. */
  lostWith(fallback: Error | undefined): Error | undefined {
    if (this.#lost) return this.#lost
    return this.#session.destroyed ? (fallback ?? new Error('the connection closed')) : undefined
  }

  get goawayLastStreamId(): number {
    return this.#goawayLastStreamId
  }

  received(): void {
    this.lastReceivedAt = this.#clock.now()
  }

  listen(listener: ConnectionListener): void {
    this.#listener = listener
  }

  open(head: RequestHead, endStream: boolean, handler: StreamHandler): Stream {
    const headers: OutgoingHttpHeaders = {
      ':method': head.method,
      ':scheme': head.scheme,
      ':authority': head.authority,
      ':path': head.path,
      ...head.headers,
    }
    let stream: ClientHttp2Stream
    try {
      stream = this.#session.request(headers, { endStream })
    } catch (error) {
      throw openFailure(error as NodeJS.ErrnoException)
    }
    const wrapped = new NodeStream(this, stream, handler)
    this.#streams.add(wrapped)
    return wrapped
  }

  released(stream: NodeStream): void {
    this.#streams.delete(stream)
    if (this.#closing) this.#closeWhenDrained()
  }

  ping(acked: (error?: Error) => void): void {
    const session = this.#session
    if (session.destroyed) {
      queueMicrotask(() => acked(new ConnectionLostError('The connection is gone')))
      return
    }
    session.ping((error) => {
      if (!error) this.received()
      acked(error ?? undefined)
    })
  }

  close(): void {
    this.#closing = true
    this.#closeWhenDrained()
  }

  /**
   * GOAWAY goes out once the last stream is done, not when the drain starts:
   * servers answer a client's GOAWAY with their own, and would refuse the
   * streams still on the wire towards them.
   */
  #closeWhenDrained(): void {
    if (this.#streams.size > 0) return
    const session = this.#session
    if (!session.closed && !session.destroyed) {
      // Our own close, if the GOAWAY handler set it aside.
      if (Object.hasOwn(session, 'close')) delete (session as { close?: unknown }).close
      session.close()
    }
    // node:http2 then ends its half of the socket and waits for the server's FIN, which a
    // server that sent GOAWAY may never send: once our GOAWAY and FIN are out, we are done.
    const socket = this.#socket
    if (socket.destroyed) return
    if (socket.writableFinished) socket.destroy()
    else socket.once('finish', () => socket.destroy())
  }

  destroy(error?: Error): void {
    if (error) this.#lost ??= error
    for (const stream of this.#streams.values()) stream.lose(this.#lost ?? new ConnectionLostError('The connection was destroyed'))
    this.#session.destroy()
    this.#socket.destroy()
  }

  #fail(error: Error): void {
    this.#lost ??= error
    this.#listener?.error(error)
  }

  #closed(): void {
    if (this.#reportedClosed) return
    this.#reportedClosed = true
    this.#socket.destroy()
    this.#listener?.closed()
  }
}

class NodeStream implements Stream, Slotted {
  /** Its place in the connection's streams. */
  slot = -1
  readonly #connection: NodeConnection
  readonly #stream: ClientHttp2Stream
  readonly #handler: StreamHandler
  #trailers: ResponseHeaders = {}
  #responded = false
  #done = false
  /**
   * node:http2 can emit a stream's first DATA (and even its end) before its
   * 'response' event, which it defers with nextTick in some states: hold them.
   */
  #early: Buffer[] | undefined
  #endedEarly = false
  #streamError: Error | undefined

  constructor(connection: NodeConnection, stream: ClientHttp2Stream, handler: StreamHandler) {
    this.#connection = connection
    this.#stream = stream
    this.#handler = handler
    stream.on('response', (headers: IncomingHttpHeaders) => this.#onResponse(headers))
    stream.on('trailers', (trailers: IncomingHttpHeaders) => {
      connection.received()
      this.#trailers = responseHeaders(trailers)
    })
    stream.on('data', (chunk: Buffer) => this.#onData(chunk))
    stream.on('end', () => this.#onEnd())
    stream.on('drain', () => {
      if (!this.#done) handler.writable()
    })
    stream.on('error', (error: Error) => {
      this.#streamError = error
    })
    stream.on('close', () => this.#onClose())
  }

  get id(): number | undefined {
    return this.#stream.id
  }

  write(chunk: Buffer): boolean {
    return this.#stream.write(chunk)
  }

  end(): void {
    if (!this.#stream.destroyed) this.#stream.end()
  }

  pause(): void {
    this.#stream.pause()
  }

  resume(): void {
    this.#stream.resume()
  }

  reset(code: number = Http2ErrorCode.CANCEL): void {
    if (!this.#stream.closed && !this.#stream.destroyed) this.#stream.close(code)
    this.#settle()
  }

  /** The connection was destroyed under the stream. */
  lose(error: Error): void {
    if (this.#settle()) this.#handler.closed({ code: undefined, by: undefined, error: undefined, lost: error, unprocessed: this.#unprocessed() })
  }

  #onResponse(headers: IncomingHttpHeaders): void {
    this.#connection.received()
    this.#responded = true
    this.#handler.response(Number(headers[':status']), responseHeaders(headers))
    const early = this.#early
    this.#early = undefined
    if (early) for (const chunk of early) if (!this.#done) this.#handler.data(chunk)
    if (this.#endedEarly) this.#complete()
  }

  #onData(chunk: Buffer): void {
    this.#connection.received()
    if (this.#done) return
    if (!this.#responded) (this.#early ??= []).push(chunk)
    else this.#handler.data(chunk)
  }

  #onEnd(): void {
    // node:http2 also ends the readable side of a stream that was torn down
    // (session destroyed, socket lost): only an end on a live stream is END_STREAM.
    if (this.#done || this.#stream.destroyed) return
    if (!this.#responded) {
      this.#endedEarly = true
      return
    }
    this.#complete()
  }

  #complete(): void {
    if (this.#settle()) this.#handler.end(this.#trailers)
  }

  #onClose(): void {
    if (this.#endedEarly) {
      // The whole response arrived and its deferred 'response' event completes it; unless there is
      // none: a RST_STREAM(NO_ERROR) before any response ends the stream the same way. By the next
      // turn the deferred event came, or there was none to come.
      setImmediate(() => {
        if (!this.#responded) this.#reportClosed()
      })
      return
    }
    this.#reportClosed()
  }

  #reportClosed(): void {
    if (!this.#settle()) return
    const unprocessed = this.#unprocessed()
    this.#handler.closed({
      // Above a GOAWAY, the code is nghttp2's own bookkeeping (REFUSED_STREAM), not something the server said.
      code: unprocessed ? undefined : this.#stream.rstCode,
      // nghttp2 resets malformed responses itself, indistinguishably from the server.
      by: undefined,
      error: undefined,
      lost: this.#connection.lostWith(this.#streamError),
      unprocessed,
    })
  }

  #unprocessed(): boolean {
    const id = this.#stream.id
    return !this.#responded && (id === undefined || id > this.#connection.goawayLastStreamId)
  }

  /** Marks the stream done for the handler and frees its slot; false if it already was. */
  #settle(): boolean {
    if (this.#done) return false
    this.#done = true
    this.#connection.released(this)
    return true
  }
}

/**
 * A raw HTTP/2 server for hostile-server tests: TLS with ALPN `h2`, and
 * nothing of node:http2 on the server side. Every byte it sends is a frame
 * built here by hand, so a test can send what no real server library would:
 * invalid frames, floods, forbidden headers, windows that never open, lying
 * GOAWAYs, resets in the middle of a body.
 *
 * What every connection does by itself (unless told otherwise):
 * - sends its own SETTINGS at once (`settings`, empty by default);
 * - reads the client preface and the client's frames, and keeps them;
 * - acknowledges the client's SETTINGS and PINGs.
 * Everything else is the test's `script`, run once per connection.
 *
 * The HPACK encoder is the smallest correct one: every field is a literal
 * without indexing with a new name (RFC 7541 §6.2.2), no Huffman, so the
 * client's decoder state never depends on what we sent before.
 */
import { EventEmitter, once } from 'node:events'
import net, { type AddressInfo } from 'node:net'
import tls from 'node:tls'
import { pki } from '../helpers/pki.js'
import { until } from '../helpers/processes.js'

export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const

export const Flag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const

export const Setting = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const

export const ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  ENHANCE_YOUR_CALM: 0xb,
} as const

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')

// ── Frame encoding ─────────────────────────────────────────────────────────

/** One frame: the 9-octet header (RFC 9113 §4.1) and its payload. Lengths and ids are not checked: hostile on purpose. */
export function encodeFrame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9)
  header.writeUIntBE(payload.length & 0xffffff, 0, 3)
  header.writeUInt8(type, 3)
  header.writeUInt8(flags, 4)
  header.writeUInt32BE(streamId >>> 0, 5)
  return Buffer.concat([header, payload])
}

/** A frame header announcing `length` octets, whatever the payload really is. */
export function frameWithLength(type: number, flags: number, streamId: number, length: number, payload: Buffer): Buffer {
  const frame = encodeFrame(type, flags, streamId, payload)
  frame.writeUIntBE(length, 0, 3)
  return frame
}

/** HPACK integer with an N-bit prefix (RFC 7541 §5.1); `high` holds the bits above the prefix. */
export function hpackInteger(value: number, prefixBits: number, high = 0): Buffer {
  const max = (1 << prefixBits) - 1
  if (value < max) return Buffer.from([high | value])
  const bytes = [high | max]
  let rest = value - max
  while (rest >= 128) {
    bytes.push((rest % 128) + 128)
    rest = Math.floor(rest / 128)
  }
  bytes.push(rest)
  return Buffer.from(bytes)
}

/** An HPACK string literal without Huffman coding. */
function hpackString(text: string): Buffer {
  const bytes = Buffer.from(text, 'latin1')
  return Buffer.concat([hpackInteger(bytes.length, 7, 0x00), bytes])
}

/** Literal header field without indexing, new name (RFC 7541 §6.2.2). */
export function hpackLiteral(name: string, value: string): Buffer {
  return Buffer.concat([Buffer.from([0x00]), hpackString(name), hpackString(value)])
}

/** A header block: fields in order, as given (pseudo-headers first is the caller's business). */
export function headerBlock(fields: [string, string][]): Buffer {
  return Buffer.concat(fields.map(([name, value]) => hpackLiteral(name, value)))
}

export const frames = {
  settings(entries: [number, number][] = []): Buffer {
    const payload = Buffer.alloc(entries.length * 6)
    entries.forEach(([id, value], i) => {
      payload.writeUInt16BE(id, i * 6)
      payload.writeUInt32BE(value >>> 0, i * 6 + 2)
    })
    return encodeFrame(FrameType.SETTINGS, 0, 0, payload)
  },
  settingsAck(): Buffer {
    return encodeFrame(FrameType.SETTINGS, Flag.ACK, 0)
  },
  ping(data: Buffer = Buffer.alloc(8), ack = false): Buffer {
    return encodeFrame(FrameType.PING, ack ? Flag.ACK : 0, 0, data)
  },
  headers(streamId: number, fields: [string, string][], options: { endStream?: boolean; endHeaders?: boolean } = {}): Buffer {
    const flags = (options.endStream ? Flag.END_STREAM : 0) | (options.endHeaders === false ? 0 : Flag.END_HEADERS)
    return encodeFrame(FrameType.HEADERS, flags, streamId, headerBlock(fields))
  },
  continuation(streamId: number, block: Buffer, endHeaders: boolean): Buffer {
    return encodeFrame(FrameType.CONTINUATION, endHeaders ? Flag.END_HEADERS : 0, streamId, block)
  },
  data(streamId: number, data: Buffer | string, endStream = false): Buffer {
    return encodeFrame(FrameType.DATA, endStream ? Flag.END_STREAM : 0, streamId, Buffer.from(data))
  },
  rstStream(streamId: number, code: number): Buffer {
    const payload = Buffer.alloc(4)
    payload.writeUInt32BE(code >>> 0)
    return encodeFrame(FrameType.RST_STREAM, 0, streamId, payload)
  },
  goaway(lastStreamId: number, code: number = ErrorCode.NO_ERROR, debug = ''): Buffer {
    const payload = Buffer.alloc(8)
    payload.writeUInt32BE(lastStreamId >>> 0, 0)
    payload.writeUInt32BE(code >>> 0, 4)
    return encodeFrame(FrameType.GOAWAY, 0, 0, Buffer.concat([payload, Buffer.from(debug)]))
  },
  windowUpdate(streamId: number, increment: number): Buffer {
    const payload = Buffer.alloc(4)
    payload.writeUInt32BE(increment >>> 0)
    return encodeFrame(FrameType.WINDOW_UPDATE, 0, streamId, payload)
  },
  pushPromise(streamId: number, promisedId: number, fields: [string, string][]): Buffer {
    const id = Buffer.alloc(4)
    id.writeUInt32BE(promisedId)
    return encodeFrame(FrameType.PUSH_PROMISE, Flag.END_HEADERS, streamId, Buffer.concat([id, headerBlock(fields)]))
  },
}

/** A complete, well-formed response: HEADERS then one DATA with END_STREAM (or HEADERS alone). */
export function response(streamId: number, status = 200, body = '', extra: [string, string][] = []): Buffer {
  const fields: [string, string][] = [[':status', String(status)], ['content-length', String(Buffer.byteLength(body))], ...extra]
  if (body === '') return frames.headers(streamId, fields, { endStream: true })
  return Buffer.concat([frames.headers(streamId, fields), frames.data(streamId, body, true)])
}

// ── Frame decoding (what the client sends) ─────────────────────────────────

export interface Frame {
  type: number
  flags: number
  streamId: number
  payload: Buffer
}

export interface HostileConnectionEvents {
  frame: [Frame]
  /** A HEADERS frame opened a client stream. */
  stream: [streamId: number]
  close: []
}

/** One accepted connection, as a script sees it. */
export class HostileConnection extends EventEmitter<HostileConnectionEvents> {
  /** 1, 2, … in order of acceptance. */
  readonly index: number
  readonly socket: tls.TLSSocket
  /** The TCP socket under TLS (for a real RST). */
  readonly tcp: net.Socket
  /** Every frame the client sent, in order. */
  readonly received: Frame[] = []
  /** Client stream ids that sent HEADERS, in order. */
  readonly streams: number[] = []
  /** Answer the client's PINGs (on by default). */
  answerPings = true
  /** Acknowledge the client's SETTINGS (on by default). */
  answerSettings = true
  #buffer = Buffer.alloc(0)
  #prefaceSeen = false
  #closed = false

  constructor(index: number, socket: tls.TLSSocket, tcp: net.Socket) {
    super()
    this.index = index
    this.socket = socket
    this.tcp = tcp
    socket.on('data', (chunk: Buffer) => this.#read(chunk))
    socket.on('error', () => {})
    socket.on('close', () => {
      this.#closed = true
      this.emit('close')
    })
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Writes raw bytes (ignored once the socket is gone). */
  write(bytes: Buffer): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(bytes)
  }

  /** Resolves with the next client stream id (or one already opened and not yet taken). */
  async nextStream(): Promise<number> {
    const [streamId] = (await once(this, 'stream')) as [number]
    return streamId
  }

  /** Resolves with the stream id of the `n`-th HEADERS (1-based), now or when it arrives. */
  async stream(n: number): Promise<number> {
    while (this.streams.length < n) await once(this, 'stream')
    return this.streams[n - 1]!
  }

  /** Resolves once a client frame matching the predicate arrived (one already received counts). */
  async frame(predicate: (frame: Frame) => boolean): Promise<Frame> {
    const seen = this.received.find(predicate)
    if (seen) return seen
    // A listener, not once() in a loop: frames parsed from one chunk are emitted in one go.
    return new Promise((resolve) => {
      const onFrame = (frame: Frame) => {
        if (!predicate(frame)) return
        this.off('frame', onFrame)
        resolve(frame)
      }
      this.on('frame', onFrame)
    })
  }

  /** Resolves when the socket is closed. */
  async whenClosed(): Promise<void> {
    if (!this.#closed) await once(this, 'close')
  }

  /** TCP RST (the TLS layer is skipped: no close_notify). */
  reset(): void {
    if (!this.tcp.destroyed) this.tcp.resetAndDestroy()
    this.socket.destroy()
  }

  #read(chunk: Buffer): void {
    this.#buffer = Buffer.concat([this.#buffer, chunk])
    if (!this.#prefaceSeen) {
      if (this.#buffer.length < PREFACE.length) return
      if (!this.#buffer.subarray(0, PREFACE.length).equals(PREFACE)) {
        this.socket.destroy()
        return
      }
      this.#prefaceSeen = true
      this.#buffer = this.#buffer.subarray(PREFACE.length)
    }
    while (this.#buffer.length >= 9) {
      const length = this.#buffer.readUIntBE(0, 3)
      if (this.#buffer.length < 9 + length) return
      const frame: Frame = {
        type: this.#buffer.readUInt8(3),
        flags: this.#buffer.readUInt8(4),
        streamId: this.#buffer.readUInt32BE(5) & 0x7fffffff,
        payload: Buffer.from(this.#buffer.subarray(9, 9 + length)),
      }
      this.#buffer = this.#buffer.subarray(9 + length)
      this.received.push(frame)
      if (frame.type === FrameType.SETTINGS && !(frame.flags & Flag.ACK) && this.answerSettings) this.write(frames.settingsAck())
      if (frame.type === FrameType.PING && !(frame.flags & Flag.ACK) && this.answerPings) this.write(frames.ping(frame.payload, true))
      this.emit('frame', frame)
      if (frame.type === FrameType.HEADERS) {
        this.streams.push(frame.streamId)
        this.emit('stream', frame.streamId)
      }
    }
  }
}

export type Script = (connection: HostileConnection) => void | Promise<void>

export interface HostileServerOptions {
  /** Loopback address to listen on. Default 127.0.0.1. */
  host?: string
  /** Our SETTINGS, sent as soon as the connection is up; `false` sends none; a function decides per connection (1-based). Default []. */
  settings?: [number, number][] | false | ((index: number) => [number, number][] | false)
  /** ALPN protocols offered. Default ['h2']. */
  alpn?: string[]
  /** Runs once per connection, after our SETTINGS went out. */
  script: Script
}

export interface HostileServer {
  readonly host: string
  readonly port: number
  readonly connections: HostileConnection[]
  /** Connections whose socket is still open. */
  readonly open: number
  /** Errors thrown by scripts (a test should expect none). */
  readonly scriptErrors: unknown[]
  /** Resolves with the `n`-th connection (1-based), now or when it is accepted. */
  connection(n: number): Promise<HostileConnection>
  /** Polls (bounded) until no connection is open; rejects naming how many still are. */
  allClosed(limit?: number): Promise<void>
  close(): Promise<void>
}

export async function startHostileServer(options: HostileServerOptions): Promise<HostileServer> {
  const host = options.host ?? '127.0.0.1'
  const connections: HostileConnection[] = []
  const scriptErrors: unknown[] = []
  const accepted = new EventEmitter()
  const context = tls.createSecureContext(pki.apiTest)
  const server = net.createServer((tcp) => {
    tcp.on('error', () => {})
    const socket = new tls.TLSSocket(tcp, { isServer: true, secureContext: context, ALPNProtocols: options.alpn ?? ['h2'] })
    socket.on('error', () => {})
    socket.once('secure', () => {
      const connection = new HostileConnection(connections.length + 1, socket, tcp)
      connections.push(connection)
      // The server preface (our SETTINGS) may go out before the client's: RFC 9113 §3.4.
      const settings = typeof options.settings === 'function' ? options.settings(connection.index) : options.settings
      if (settings !== false) connection.write(frames.settings(settings ?? []))
      Promise.resolve()
        .then(() => options.script(connection))
        .catch((error: unknown) => scriptErrors.push(error))
      accepted.emit('connection', connection)
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const port = (server.address() as AddressInfo).port
  return {
    host,
    port,
    connections,
    scriptErrors,
    get open() {
      return connections.filter((connection) => !connection.closed).length
    },
    async connection(n: number) {
      while (connections.length < n) await once(accepted, 'connection')
      return connections[n - 1]!
    },
    async allClosed(limit = 5000) {
      await until(() => connections.every((connection) => connection.closed), 'every connection to close', limit, 5).catch(() => {
        throw new Error(`${connections.filter((c) => !c.closed).length} connection(s) still open after ${limit} ms`)
      })
    },
    async close() {
      for (const connection of connections) {
        connection.socket.destroy()
        connection.tcp.destroy()
      }
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/**
 * A well-behaved server for a connection from now on: answers every request
 * whose first HEADERS arrives from now on with 200 and `body` once it is
 * complete (END_STREAM seen), granting the flow-control window the client
 * needs on the way. Streams opened before the call are left to the caller.
 */
export function serveWell(connection: HostileConnection, body = 'ok'): void {
  const before = new Set(connection.streams)
  const answered = new Set<number>()
  const answer = (streamId: number) => {
    if (answered.has(streamId)) return
    answered.add(streamId)
    connection.write(response(streamId, 200, body))
  }
  const onFrame = (frame: Frame) => {
    if (frame.streamId === 0 || before.has(frame.streamId)) return
    if (frame.type === FrameType.DATA && frame.payload.length > 0) {
      connection.write(frames.windowUpdate(0, frame.payload.length))
      connection.write(frames.windowUpdate(frame.streamId, frame.payload.length))
    }
    if ((frame.type === FrameType.HEADERS || frame.type === FrameType.DATA) && frame.flags & Flag.END_STREAM) answer(frame.streamId)
  }
  connection.on('frame', onFrame)
}

/**
 * Drives the wire engine directly, below the pool: connect to a loopback
 * server, open streams with recording handlers, and wait on what the
 * connection and its streams report.
 */
import { once, EventEmitter } from 'node:events'
import type { Clock } from '../../lib/clock.js'
import { realClock } from '../../lib/clock.js'
import type { ConnectionListener, Goaway, LocalSettings, ResponseHeaders, StreamClosed, StreamHandler } from '../../lib/engine.js'
import { connectWire, type WireConnection, type WireInternals } from '../../lib/wire/connection.js'
import type { WireStream } from '../../lib/wire/stream.js'
import { pki } from '../helpers/pki.js'

export const SETTINGS: LocalSettings = { streamWindow: 1 << 20, connectionWindow: 4 << 20, maxHeaderListSize: 65_536, maxHeaderFields: 128 }

export interface ConnectOptions {
  /** h2c (prior knowledge) instead of TLS. */
  scheme?: 'https' | 'http'
  settings?: Partial<LocalSettings>
  clock?: Clock
  internals?: WireInternals
  signal?: AbortSignal
}

/** Everything a connection reported to its listener, in order. */
export class ListenerLog extends EventEmitter implements ConnectionListener {
  readonly events: string[] = []
  readonly goaways: Goaway[] = []
  readonly errors: Error[] = []
  settingsChanges = 0
  isClosed = false

  settings(): void {
    this.settingsChanges++
    this.events.push('settings')
    this.emit('settings')
  }
  goaway(goaway: Goaway): void {
    this.goaways.push(goaway)
    this.events.push(`goaway ${goaway.lastStreamId} ${goaway.errorCode}`)
    this.emit('goaway', goaway)
  }
  error(error: Error): void {
    this.errors.push(error)
    this.events.push('error')
    this.emit('error-reported', error)
  }
  closed(): void {
    this.isClosed = true
    this.events.push('closed')
    this.emit('closed')
  }

  async whenClosed(): Promise<void> {
    if (!this.isClosed) await once(this, 'closed')
  }

  async whenError(): Promise<Error> {
    if (this.errors.length > 0) return this.errors[0]!
    const [error] = (await once(this, 'error-reported')) as [Error]
    return error
  }

  async nextGoaway(count = 1): Promise<Goaway> {
    while (this.goaways.length < count) await once(this, 'goaway')
    return this.goaways[count - 1]!
  }

  async nextSettings(count: number): Promise<void> {
    while (this.settingsChanges < count) await once(this, 'settings')
  }
}

/** Connects to `https://api.test:<port>` (or `http://`) at `host` with the wire engine, and listens. */
export async function connect(host: string, port: number, options: ConnectOptions = {}): Promise<{ connection: WireConnection; log: ListenerLog }> {
  const url = new URL(`${options.scheme ?? 'https'}://api.test:${port}`)
  const connection = await connectWire(
    {
      origin: url.origin,
      url,
      addresses: [host],
      tls: { ca: pki.ca },
      settings: { ...SETTINGS, ...options.settings },
      clock: options.clock ?? realClock,
    },
    options.signal ?? new AbortController().signal,
    options.internals,
  )
  const log = new ListenerLog()
  connection.listen(log)
  return { connection, log }
}

/** A stream handler that records everything and settles once the stream ended either way. */
export class Recorder implements StreamHandler {
  status = 0
  headers: ResponseHeaders | undefined
  readonly chunks: Buffer[] = []
  trailers: ResponseHeaders | undefined
  closedWith: StreamClosed | undefined
  writables = 0
  /** Every call, in order (`response`, `data`, `end`, `closed`, `writable`). */
  readonly calls: string[] = []
  stream!: WireStream
  readonly settled: Promise<void>
  readonly #events = new EventEmitter()
  #settle!: () => void

  /** Hooks a test sets to act from inside a callback. */
  onResponse: (() => void) | undefined
  onData: ((chunk: Buffer) => void) | undefined
  onWritable: (() => void) | undefined

  constructor() {
    this.settled = new Promise((resolve) => (this.#settle = resolve))
  }

  response(status: number, headers: ResponseHeaders): void {
    this.calls.push('response')
    this.status = status
    this.headers = headers
    this.onResponse?.()
    this.#events.emit('response')
  }
  data(chunk: Buffer): void {
    this.calls.push('data')
    this.chunks.push(chunk)
    this.onData?.(chunk)
    this.#events.emit('data')
  }
  end(trailers: ResponseHeaders): void {
    this.calls.push('end')
    this.trailers = trailers
    this.#settle()
  }
  closed(why: StreamClosed): void {
    this.calls.push('closed')
    this.closedWith = why
    this.#settle()
  }
  writable(): void {
    this.calls.push('writable')
    this.writables++
    this.onWritable?.()
    this.#events.emit('writable')
  }

  get received(): number {
    return this.chunks.reduce((sum, chunk) => sum + chunk.length, 0)
  }

  body(): Buffer {
    return Buffer.concat(this.chunks)
  }

  async whenResponse(): Promise<void> {
    if (this.status === 0) await once(this.#events, 'response')
  }

  /** Resolves once at least `size` body octets arrived. */
  async whenReceived(size: number): Promise<void> {
    while (this.received < size) await once(this.#events, 'data')
  }
}

export interface RequestOptions {
  method?: string
  scheme?: 'https' | 'http'
  headers?: Record<string, string | string[]>
  /** Sent as the body, then END_STREAM. Without it the head carries END_STREAM (unless `open` is true). */
  body?: Buffer | string
  /** Leave the request body open (the test writes it). */
  open?: boolean
}

/** Opens a stream with a Recorder. */
export function request(connection: WireConnection, path: string, options: RequestOptions = {}): Recorder {
  const recorder = new Recorder()
  const endStream = options.body === undefined && !options.open
  recorder.stream = connection.open(
    { method: options.method ?? (options.body === undefined ? 'GET' : 'POST'), scheme: options.scheme ?? 'https', authority: 'api.test', path, headers: options.headers ?? {} },
    endStream,
    recorder,
  )
  if (options.body !== undefined) {
    recorder.stream.write(Buffer.from(options.body))
    recorder.stream.end()
  }
  return recorder
}

/** Writes `body` through a stream honouring `write()`'s backpressure, then ends it. */
export function pump(recorder: Recorder, body: Buffer, chunkSize = 100_000): void {
  let offset = 0
  const next = () => {
    while (offset < body.length) {
      const chunk = body.subarray(offset, offset + chunkSize)
      offset += chunk.length
      if (!recorder.stream.write(chunk)) return
    }
    recorder.stream.end()
  }
  recorder.onWritable = next
  next()
}

/** Handles of sockets still open in this process (timers and stdio pipes aside). */
export function openSockets(): string[] {
  return process.getActiveResourcesInfo().filter((name) => name === 'TCPSocketWrap' || name === 'TLSWrap' || name === 'TCPWrap')
}

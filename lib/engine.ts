/**
 * The seam between drainpipe's lifecycle and whatever speaks HTTP/2 on one
 * connection. Everything above it (pool, exchange, liveness) sees only these
 * interfaces; an engine sees nothing above it. Two engines implement it:
 * the node:http2 adapter (`node-engine.ts`, the only file that imports
 * `node:http2`) and drainpipe's own (`wire/`), which sees every frame.
 *
 * The seam reports facts, not verdicts: which code reset a stream and who
 * sent it, every GOAWAY with its last-stream-id, a connection error the
 * engine detected itself. What a fact means for a request (retry it, fail
 * it as lost) is decided above, in one place (`exchange.ts`).
 */
import type { Clock } from './clock.js'
import type { ConnectOptions } from './options.js'

/**
 * Under this key in a client's options, an engine replaces the one the
 * options name: the repository's fleet simulator plugs its simulated
 * network in there. Not exported from the package.
 */
export const kEngine = Symbol('drainpipe.engine')

/** Response headers or trailers: names lowercased, repeated fields as arrays (`set-cookie`). */
export type ResponseHeaders = Record<string, string | string[]>

/** HTTP/2 error codes (RFC 9113 §7). */
export const Http2ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const

const codeNames = new Map<number, string>(Object.entries(Http2ErrorCode).map(([name, code]) => [code, name]))

/** The RFC name of an HTTP/2 error code (`REFUSED_STREAM`), or `unknown code 0x…` for one outside §7. */
export function errorCodeName(code: number): string {
  return codeNames.get(code) ?? `unknown code 0x${code.toString(16)}`
}

/** What the engine needs to open one connection. */
export interface ConnectTarget {
  /** Canonical origin, `https://host:port`: the key of everything, and `:authority`'s default. */
  readonly origin: string
  readonly url: URL
  /** Addresses of one fresh lookup, the preferred one first; others are fallbacks if it cannot be reached. */
  readonly addresses: readonly string[]
  readonly tls: ConnectOptions
  /** Limits and windows we announce and enforce. */
  readonly settings: LocalSettings
  /** The time source of the engine's own deadlines (SETTINGS ACK, flood windows). */
  readonly clock: Clock
}

/** Our side of the connection: windows we grant and limits we enforce on the server. */
export interface LocalSettings {
  /** SETTINGS_INITIAL_WINDOW_SIZE: what one stream may send before we credit it. */
  readonly streamWindow: number
  /** What the whole connection may send before we credit it. */
  readonly connectionWindow: number
  /** SETTINGS_MAX_HEADER_LIST_SIZE: the largest response header block, as RFC 7541 §4.1 counts it. */
  readonly maxHeaderListSize: number
  /** The most header fields one response header block may carry. */
  readonly maxHeaderFields: number
}

/** An engine: opens connections. Resolves once the server's first SETTINGS arrived. */
export interface Engine {
  readonly name: string
  /**
   * Rejects with a typed error: `ConnectError`, `ProtocolNegotiationError`
   * (the server chose HTTP/1.1), or the signal's reason (connect timeout,
   * close). Nothing is left open when it rejects.
   */
  connect(target: ConnectTarget, signal: AbortSignal): Promise<Connection>
}

/** A GOAWAY frame as received. Every one is reported, a graceful restart's two included. */
export interface Goaway {
  readonly errorCode: number
  readonly lastStreamId: number
  readonly debug: Buffer
}

/** How a connection reports to its owner (the pool). */
export interface ConnectionListener {
  /** The server's SETTINGS changed what may be opened (max concurrent streams, windows). */
  settings(): void
  /** A GOAWAY arrived: streams above its last-stream-id were not processed, and no new stream may be opened. */
  goaway(goaway: Goaway): void
  /**
   * The connection failed: a socket error, or a connection error either side
   * detected (the engine names it: a `ProtocolError` with the code it sent
   * in its GOAWAY). Streams still open are reported lost; `closed` follows.
   */
  error(error: Error): void
  /** The socket is gone and every stream has been reported closed. Called once. */
  closed(): void
}

/** A request's head: pseudo-header values and fields already validated and lowercased. */
export interface RequestHead {
  readonly method: string
  readonly scheme: 'https' | 'http'
  readonly authority: string
  readonly path: string
  readonly headers: Readonly<Record<string, string | string[]>>
}

/** Why a stream closed without a complete response. */
export interface StreamClosed {
  /** The RST_STREAM error code, when the stream was reset. */
  readonly code: number | undefined
  /** Who reset it: the server, or the engine itself (a protocol violation it found, a limit). */
  readonly by: 'peer' | 'local' | undefined
  /** What the engine found, when it reset the stream itself (a `ProtocolError` naming the violation). */
  readonly error: Error | undefined
  /** The connection ended under the stream: why. */
  readonly lost: Error | undefined
  /**
   * The server provably did not process it: never sent, above a GOAWAY's
   * last-stream-id, or refused by the connection before a byte was written.
   */
  readonly unprocessed: boolean
}

/** What a stream reports to its exchange. Called synchronously from the engine; never re-entrant. */
export interface StreamHandler {
  /** The final response head (1xx responses are not reported). */
  response(status: number, headers: ResponseHeaders): void
  /** Body bytes. While the stream is paused, nothing arrives. */
  data(chunk: Buffer): void
  /** END_STREAM arrived (after trailers, if any): the response is complete and its length checked. */
  end(trailers: ResponseHeaders): void
  /** The stream ended without a complete response. Called at most once, never after `end`. */
  closed(why: StreamClosed): void
  /** `write()` returned false earlier; the body may be written again. */
  writable(): void
}

/** One request's stream on a connection. */
export interface Stream {
  /** The stream id, once the HEADERS frame was queued. */
  readonly id: number | undefined
  /** Queues request body bytes; false when the caller should wait for `writable()`. */
  write(chunk: Buffer): boolean
  /** Ends the request body (END_STREAM). */
  end(): void
  /** Stops delivering the body; flow-control credit is not given back while paused. */
  pause(): void
  resume(): void
  /** Resets the stream (RST_STREAM with `code`, CANCEL by default); no handler call follows. */
  reset(code?: number): void
}

/** One HTTP/2 connection. */
export interface Connection {
  /** The address the socket reached (one of the target's addresses). */
  readonly address: string
  /** The server's SETTINGS_MAX_CONCURRENT_STREAMS (Infinity while unset). */
  readonly maxConcurrentStreams: number
  /** Streams opened by us and not yet closed. */
  readonly activeStreams: number
  /** Whether `open()` may be called now: no GOAWAY either way, no error, stream ids left. */
  readonly accepting: boolean
  /** When bytes last arrived from the server, on the target's clock (read once per socket read, not per frame). */
  readonly lastReceivedAt: number
  /** Set once, before anything is reported. */
  listen(listener: ConnectionListener): void
  /**
   * Opens a stream and sends the request head (END_STREAM with it when
   * `endStream`). Throws a typed error when the head cannot be sent (an
   * invalid header, the connection no longer accepting).
   */
  open(head: RequestHead, endStream: boolean, handler: StreamHandler): Stream
  /** Sends a PING; `acked` is called once with nothing (ACK), or an error if the PING can no longer be answered. */
  ping(acked: (error?: Error) => void): void
  /** Graceful: takes no new stream, lets open ones finish, then sends GOAWAY(NO_ERROR) and ends the socket. */
  close(): void
  /** At once: open streams are reported lost with `error`, the socket is destroyed. */
  destroy(error?: Error): void
}

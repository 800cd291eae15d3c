import diagnostics from 'node:diagnostics_channel'
import type { CloseReason, DrainReason } from './pool.js'
import type { RecycleReason } from './shard.js'

/** Which pool a message is about; every pool message carries these. */
export interface PoolInfo {
  /** The origin, `https://host:port`. */
  origin: string
  /** Stable id of the pool within this process. */
  id: number
  /** The resolved address the pool connected to. */
  address: string | undefined
}

/** `drainpipe:pool:connect`: a pool's HTTP/2 session is up (after the server's SETTINGS). */
export interface ConnectMessage extends PoolInfo {
  /** Lookup + TCP + TLS + SETTINGS, in ms. */
  connectDuration: number
  /** The pool this one replaces (a recycle or a GOAWAY replacement). */
  successorOf: number | undefined
}

/** `drainpipe:pool:connect-failed`: a connect attempt failed. */
export interface ConnectFailedMessage extends PoolInfo {
  /** Why (a typed `ConnectError`, `ConnectTimeoutError`, …). */
  error: Error
}

/** `drainpipe:pool:recycle`: a planned recycle finished. */
export interface RecycleMessage extends PoolInfo {
  /** `ok` when the successor took over, `failed` when the old pool keeps serving. */
  result: 'ok' | 'failed'
  /** What started it: the connection's age, the cooldown after a failed recycle, its request limit, its address leaving DNS, its address ejected, another address back from an ejection. */
  reason: RecycleReason
  /** Why the successor failed, when `failed`. */
  error?: Error
  /** The successor's pool id, when `ok`. */
  successor?: number
}

/** `drainpipe:pool:drain`: a pool became read-only and finishes its in-flight streams. */
export interface DrainMessage extends PoolInfo {
  /** Why it stopped taking requests. */
  reason: DrainReason
  /** Streams still open when the drain began. */
  inFlight: number
}

/** `drainpipe:pool:close`: a pool closed. */
export interface CloseMessage extends PoolInfo {
  /** Why: the drain reason after a drain, or what ended it otherwise. */
  reason: CloseReason
  /** Milliseconds since the connection was established. */
  age: number
  /** Streams opened on the connection. */
  served: number
  /** The failure, when it closed on one. */
  error?: Error
}

/** `drainpipe:pool:goaway`: the server sent GOAWAY. */
export interface GoawayMessage extends PoolInfo {
  /** The HTTP/2 error code (0 is a graceful shutdown). */
  errorCode: number
  /** Streams above it were not processed and are retried. */
  lastStreamId: number
  /** The debug data, as text (`too_many_pings`, …). */
  debug: string
}

/** `drainpipe:pool:ping-timeout`: no PING ACK within its deadline (`keepAlive.timeout`, or 2 s at most for the probe after a request timed out); the connection is dead. */
export interface PingTimeoutMessage extends PoolInfo {
  /** The PING interval in force, in ms. */
  interval: number
  /** The ACK deadline that passed, in ms. */
  timeout: number
}

/** `drainpipe:pool:ping-backoff`: the server asked for fewer PINGs; the origin's interval doubled. */
export interface PingBackoffMessage extends PoolInfo {
  /** The new interval, in ms. */
  interval: number
}

/** `drainpipe:request:retry`: a request the server provably did not process is sent again. */
export interface RetryMessage {
  /** The request's origin. */
  origin: string
  /** The request's method. */
  method: string
  /** The request's path and query. */
  path: string
  /** The attempt about to be made: 2 for the first retry. */
  attempt: number
  /** The failure's code (`DRAINPIPE_REFUSED_STREAM`, `DRAINPIPE_READ_ONLY`). */
  reason: string
  /** The failure of the previous attempt. */
  error: Error
}

/** `drainpipe:address:ejected`: consecutive failures ejected an address: no new connections, its pools are replaced elsewhere and drain. */
export interface AddressEjectedMessage {
  /** The origin, `https://host:port`. */
  origin: string
  /** The resolved address. */
  address: string
  /** The failures in a row that ejected it (1 for an address on probation after an ejection). */
  consecutiveFailures: number
  /** Times it was ejected, this one included. */
  ejections: number
  /** How long the ejection lasts (ms). */
  duration: number
  /** Every address is now ejected or failing, so none is avoided. */
  panic: boolean
}

/** `drainpipe:address:returned`: an ejection ended; the address takes connections again, in slow start and on probation. */
export interface AddressReturnedMessage {
  /** The origin, `https://host:port`. */
  origin: string
  /** The resolved address. */
  address: string
  /** Times it was ejected. */
  ejections: number
}

/**
 * The `node:diagnostics_channel` channels drainpipe publishes on, and their
 * payloads, so metrics and tracing (Prometheus, OpenTelemetry) can observe
 * the lifecycle without drainpipe depending on either.
 */
export interface ChannelMessages {
  /** A pool is up. */
  'drainpipe:pool:connect': ConnectMessage
  /** A connect attempt failed. */
  'drainpipe:pool:connect-failed': ConnectFailedMessage
  /** A planned recycle finished. */
  'drainpipe:pool:recycle': RecycleMessage
  /** A pool turned read-only. */
  'drainpipe:pool:drain': DrainMessage
  /** A pool closed. */
  'drainpipe:pool:close': CloseMessage
  /** The server sent GOAWAY. */
  'drainpipe:pool:goaway': GoawayMessage
  /** A connection was declared dead. */
  'drainpipe:pool:ping-timeout': PingTimeoutMessage
  /** The PING interval doubled. */
  'drainpipe:pool:ping-backoff': PingBackoffMessage
  /** An unprocessed request is sent again. */
  'drainpipe:request:retry': RetryMessage
  /** An address was ejected. */
  'drainpipe:address:ejected': AddressEjectedMessage
  /** An ejected address is back. */
  'drainpipe:address:returned': AddressReturnedMessage
}

/** The name of a drainpipe diagnostics channel. */
export type ChannelName = keyof ChannelMessages

const names: ChannelName[] = [
  'drainpipe:pool:connect',
  'drainpipe:pool:connect-failed',
  'drainpipe:pool:recycle',
  'drainpipe:pool:drain',
  'drainpipe:pool:close',
  'drainpipe:pool:goaway',
  'drainpipe:pool:ping-timeout',
  'drainpipe:pool:ping-backoff',
  'drainpipe:request:retry',
  'drainpipe:address:ejected',
  'drainpipe:address:returned',
]
// Held strongly: diagnostics_channel keeps channels only weakly.
const table = new Map(names.map((name) => [name, diagnostics.channel(name)]))

/** Publishes only when someone listens, so building the payload costs nothing otherwise. */
export function publish<N extends ChannelName>(name: N, message: () => ChannelMessages[N]): void {
  const target = table.get(name)!
  if (target.hasSubscribers) target.publish(message())
}

import diagnostics from 'node:diagnostics_channel'

/**
 * `node:diagnostics_channel` channels, so metrics and tracing (Prometheus,
 * OpenTelemetry) can observe the lifecycle without drainpipe depending on
 * either. Payloads are plain objects; see the README for their fields.
 */
export interface PoolInfo {
  origin: string
  /** Stable id of the pool within this process. */
  id: number
  /** The resolved address the pool connected to. */
  address: string | undefined
}

export interface ChannelMessages {
  /** A pool's HTTP/2 session is up (after the server's SETTINGS). */
  'drainpipe:pool:connect': PoolInfo & { connectDuration: number; successorOf: number | undefined }
  /** A connect attempt failed. */
  'drainpipe:pool:connect-failed': PoolInfo & { error: Error }
  /** A planned recycle finished: `ok` when the successor took over, `failed` when the old pool keeps serving. */
  'drainpipe:pool:recycle': PoolInfo & { result: 'ok' | 'failed'; reason: string; error?: Error; successor?: number }
  /** A pool became read-only and drains its in-flight streams. */
  'drainpipe:pool:drain': PoolInfo & { reason: string; inFlight: number }
  /** A pool closed. */
  'drainpipe:pool:close': PoolInfo & { reason: string; age: number; served: number; error?: Error }
  /** The server sent GOAWAY. */
  'drainpipe:pool:goaway': PoolInfo & { errorCode: number; lastStreamId: number; debug: string }
  /** No PING ACK within `keepAlive.timeout`: the connection is considered dead. */
  'drainpipe:pool:ping-timeout': PoolInfo & { interval: number; timeout: number }
  /** The server asked for fewer PINGs (ENHANCE_YOUR_CALM, too_many_pings); the interval doubled. */
  'drainpipe:pool:ping-backoff': PoolInfo & { interval: number }
  /** A request that was provably not processed is sent again. */
  'drainpipe:request:retry': { origin: string; method: string; path: string; attempt: number; reason: string; error: Error }
}

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
]
// Held strongly: diagnostics_channel keeps channels only weakly.
const table = new Map(names.map((name) => [name, diagnostics.channel(name)]))

/** Publishes only when someone listens, so building the payload costs nothing otherwise. */
export function publish<N extends ChannelName>(name: N, message: () => ChannelMessages[N]): void {
  const target = table.get(name)!
  if (target.hasSubscribers) target.publish(message())
}

import type { PoolStateName } from './pool.js'

export interface PoolStats {
  id: number
  /** Which of the origin's `count` shards this pool serves. */
  shard: number
  address: string | undefined
  state: PoolStateName
  /** Milliseconds since the connection was established. */
  age: number
  inFlight: number
  /** Streams opened on this connection. */
  served: number
  /** The server's SETTINGS_MAX_CONCURRENT_STREAMS. */
  maxConcurrentStreams: number | undefined
}

export interface OriginStats {
  /** `http/1.1` once the origin turned out not to speak HTTP/2 (served by undici's Pool). */
  protocol: 'h2' | 'http/1.1'
  pools: PoolStats[]
  /** Requests waiting for a stream slot or a connection. */
  queued: number
  /** Requests sent per resolved address since the client started. */
  requestsByAddress: Record<string, number>
  /** The PING interval in force (doubled after the server's `too_many_pings`). */
  pingInterval: number
}

export interface ClientStats {
  origins: Record<string, OriginStats>
  recycles: { ok: number; failed: number }
  goaways: number
  pingTimeouts: number
  retries: number
}

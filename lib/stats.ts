import type { PoolState } from './pool.js'

/** Where a pool is in its lifecycle; `recycling` is an open pool whose successor is connecting. */
export type PoolStateName = 'connecting' | 'open' | 'recycling' | 'draining' | 'closed'

// The pool's own states and `recycling`, exactly: the compiler keeps the two in step.
type Exact<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never
const inStep: Exact<PoolState['name'] | 'recycling', PoolStateName> = true
void inStep

/** One pool (connection) in `client.stats()`. */
export interface PoolStats {
  /** Stable id of the pool within this process (also in every channel message). */
  id: number
  /** Which of the origin's `count` shards this pool serves. */
  shard: number
  /** The resolved address the pool connected to (undefined until resolved). */
  address: string | undefined
  /** Where the pool is in its lifecycle. */
  state: PoolStateName
  /** Milliseconds since the connection was established. */
  age: number
  /** Streams open now. */
  inFlight: number
  /** Streams opened on this connection. */
  served: number
  /** The server's SETTINGS_MAX_CONCURRENT_STREAMS. */
  maxConcurrentStreams: number | undefined
}

/** Where an address stands: `healthy`, `ejected` (no new connections, its pools drain), or `slow-start` (new or back, its share ramping up). */
export type AddressState = 'healthy' | 'ejected' | 'slow-start'

/** One resolved address of an origin in `client.stats()`. */
export interface AddressStats {
  /** Where it stands. */
  state: AddressState
  /** Its pools' share relative to a warm, healthy address's (1): below 1 during slow start. */
  weight: number
  /** Failures since its last success. */
  consecutiveFailures: number
  /** Times it was ejected. */
  ejections: number
}

/** One origin in `client.stats()`. */
export interface OriginStats {
  /** `http/1.1` once the origin turned out not to speak HTTP/2 (served by undici's Pool). */
  protocol: 'h2' | 'http/1.1'
  /** Every pool not yet closed, draining ones included. */
  pools: PoolStats[]
  /** Requests waiting for a stream slot or a connection. */
  queued: number
  /** Requests sent per resolved address since the client started. */
  requestsByAddress: Record<string, number>
  /** The addresses of the latest lookup, and how each stands (empty for an IP literal). */
  addresses: Record<string, AddressStats>
  /** Every address is ejected or failing, so none is avoided. */
  panic: boolean
  /** The PING interval in force (doubled after the server's `too_many_pings`). */
  pingInterval: number
}

/** What `client.stats()` returns: per origin and pool, and totals since the client started. */
export interface ClientStats {
  /** Keyed by origin (`https://host:port`). */
  origins: Record<string, OriginStats>
  /** Planned recycles: `ok` when the successor took over, `failed` when the old pool kept serving. */
  recycles: {
    /** The successor took over. */
    ok: number
    /** The successor could not be made; the old pool kept serving. */
    failed: number
  }
  /** GOAWAY frames received from servers. */
  goaways: number
  /** Connections declared dead for want of a PING acknowledgement. */
  pingTimeouts: number
  /** Transparent retries of requests the server provably did not process. */
  retries: number
  /** Addresses ejected by outlier detection. */
  ejections: number
}

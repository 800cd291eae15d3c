/**
 * A tap on the engine seam (lib/engine.ts) for interop tests: the engine the
 * tests run on, wrapped to record every connection's GOAWAYs and, for each
 * request (named by its `x-interop-id` header), the stream it was last sent
 * on; the client takes it under `kEngine` (the repository's engine hook).
 *
 * With it a test can judge each failed request by the server's own word: a
 * stream above the last-stream-id of a GOAWAY its connection received was
 * provably not processed, so failing it (instead of retrying it) is a bug.
 * The tap records what the engine parsed; what the request's caller finally
 * saw comes from drive()'s report.
 */
import { kEngine, type Connection, type ConnectionListener, type Engine, type Goaway, type RequestHead, type Stream, type StreamHandler } from '../../../lib/engine.js'
import { nodeEngine } from '../../../lib/node-engine.js'
import { wireEngine } from '../../../lib/wire/connection.js'

export const INTEROP_ID = 'x-interop-id'

/** The engine the tests run on (vitest.config.ts's projects set it; the default is the wire engine). */
export const ENGINE = process.env.DRAINPIPE_ENGINE === 'node' ? 'node' : 'wire'

export interface ConnectionRecord {
  /** Every GOAWAY the engine reported on this connection, in order. */
  readonly goaways: Goaway[]
}

/** The stream a request was last sent on (a retry opens another). */
interface Attempt {
  readonly connection: ConnectionRecord
  readonly stream: Stream
}

/**
 * What the server's GOAWAYs say about a request's last stream, counting every
 * GOAWAY its connection reported, also those read after the stream ended:
 * - `unsent`: it never got a stream id; `above`: its id is above a GOAWAY's
 *   last-stream-id. Either way it was provably not processed.
 * - `accepted`: a GOAWAY with a real last-stream-id (below 2^31-1) covers
 *   it: the server says it may have processed it.
 * - `notice only`: the connection reported only the shutdown notice,
 *   GOAWAY(2^31-1), which covers every stream.
 * - `no goaway`: the connection reported none.
 */
export type Verdict = 'unsent' | 'above' | 'accepted' | 'notice only' | 'no goaway'

const NOTICE = 2 ** 31 - 1

export interface Tap {
  /** Spread into the client's options: the tapped engine replaces the one they name. */
  readonly clientOptions: { readonly [kEngine]: Engine }
  /** Every connection the engine opened, in order. */
  readonly connections: readonly ConnectionRecord[]
  /** The verdict on the request's last stream; undefined when no stream was opened for it. */
  verdict(id: string): Verdict | undefined
}

/** Whether a verdict proves the stream was not processed (so failing its request is a bug). */
export const provedUnprocessed = (verdict: Verdict | undefined): boolean => verdict === 'unsent' || verdict === 'above'

/** A tap on the engine named by ENGINE. */
export function tapEngine(): Tap {
  const inner = ENGINE === 'node' ? nodeEngine : wireEngine
  const connections: ConnectionRecord[] = []
  const byRequest = new Map<string, Attempt>()
  const engine: Engine = {
    name: inner.name,
    async connect(target, signal) {
      const connection = await inner.connect(target, signal)
      const record: ConnectionRecord = { goaways: [] }
      connections.push(record)
      return new TappedConnection(connection, record, byRequest)
    },
  }
  return {
    clientOptions: { [kEngine]: engine },
    connections,
    verdict(id) {
      const last = byRequest.get(id)
      if (last === undefined) return undefined
      const streamId = last.stream.id
      const lastStreamIds = last.connection.goaways.map((goaway) => goaway.lastStreamId)
      if (streamId === undefined) return 'unsent'
      if (lastStreamIds.some((lastStreamId) => streamId > lastStreamId)) return 'above'
      if (lastStreamIds.some((lastStreamId) => lastStreamId < NOTICE)) return 'accepted'
      return lastStreamIds.length > 0 ? 'notice only' : 'no goaway'
    },
  }
}

/** A connection that reports to the tap and otherwise does exactly what the engine's does. */
class TappedConnection implements Connection {
  readonly #inner: Connection
  readonly #record: ConnectionRecord
  readonly #byRequest: Map<string, Attempt>

  constructor(inner: Connection, record: ConnectionRecord, byRequest: Map<string, Attempt>) {
    this.#inner = inner
    this.#record = record
    this.#byRequest = byRequest
  }

  get address() {
    return this.#inner.address
  }
  get maxConcurrentStreams() {
    return this.#inner.maxConcurrentStreams
  }
  get activeStreams() {
    return this.#inner.activeStreams
  }
  get accepting() {
    return this.#inner.accepting
  }
  get lastReceivedAt() {
    return this.#inner.lastReceivedAt
  }

  listen(listener: ConnectionListener): void {
    const goaways = this.#record.goaways
    this.#inner.listen({
      settings: () => listener.settings(),
      goaway: (goaway) => {
        goaways.push(goaway)
        listener.goaway(goaway)
      },
      error: (error) => listener.error(error),
      closed: () => listener.closed(),
    })
  }

  open(head: RequestHead, endStream: boolean, handler: StreamHandler): Stream {
    const stream = this.#inner.open(head, endStream, handler)
    const id = head.headers[INTEROP_ID]
    if (typeof id === 'string') this.#byRequest.set(id, { connection: this.#record, stream })
    return stream
  }

  ping(acked: (error?: Error) => void): void {
    this.#inner.ping(acked)
  }
  close(): void {
    this.#inner.close()
  }
  destroy(error?: Error): void {
    this.#inner.destroy(error)
  }
}

import { Readable } from 'node:stream'
import { Client as UndiciClient, type Dispatcher } from 'undici'
import type { Call } from './call.js'
import type { Clock } from './clock.js'
import { QueueFullError, fromUndici } from './errors.js'
import type { ResponseHeaders } from './handler.js'
import { lookupAnswer } from './lookup.js'
import type { ResolvedOptions } from './options.js'

/** One HTTP/1.1 connection: an undici Client that carries one request at a time, and when it was made. */
interface Slot {
  client: UndiciClient
  createdAt: number
  busy: boolean
}

/**
 * Origins that speak only HTTP/1.1 (an `https://` server that negotiates
 * `http/1.1`, or an `http://` origin without `h2c`) are served by undici
 * Clients under the same limits as HTTP/2: at most `count` connections, one
 * request at a time on each (HTTP/1.1 has no multiplexing), `maxQueue`
 * requests waiting, and `maxConnectionAge`: a connection that aged out is
 * closed once it is idle and a fresh one (with a fresh lookup) takes its
 * slot. A drop-in `fetch` never breaks on an HTTP/1.1 server.
 *
 * Not undici's Pool: its `connections` limit and its `clientTtl` together
 * count an aged-out connection until it has closed, and the requests queued
 * meanwhile wait forever (undici 7.x); and without the limit it opens more
 * connections than `count` while a finished request's connection is still
 * marked busy.
 */
export class Http1Fallback {
  readonly #origin: string
  readonly #authority: string
  readonly #options: ResolvedOptions
  readonly #clock: Clock
  readonly #slots: Slot[] = []
  readonly #waiting: Call[] = []

  constructor(origin: string, options: ResolvedOptions, clock: Clock) {
    this.#origin = origin
    this.#authority = new URL(origin).host
    this.#options = options
    this.#clock = clock
  }

  /** Requests waiting for a connection. */
  get queued(): number {
    return this.#waiting.length
  }

  /** Sends the call over HTTP/1.1 when a connection is free, or queues it. */
  run(call: Call): void {
    const slot = this.#freeSlot()
    if (slot !== undefined) {
      this.#send(slot, call)
      return
    }
    if (this.#waiting.length >= this.#options.maxQueue) {
      call.fail(new QueueFullError(this.#origin, this.#options.maxQueue))
      return
    }
    this.#waiting.push(call)
    call.carriedBy(() => {
      const index = this.#waiting.indexOf(call)
      if (index !== -1) this.#waiting.splice(index, 1)
    })
  }

  close(): Promise<void> {
    return Promise.all(this.#slots.map((slot) => slot.client.close())).then(() => {})
  }

  destroy(error: Error | null): Promise<void> {
    return Promise.all(this.#slots.map((slot) => slot.client.destroy(error))).then(() => {})
  }

  /** An idle connection (a fresh one in place of one that aged out), a new one while fewer than `count`, or none. */
  #freeSlot(): Slot | undefined {
    const age = this.#options.maxConnectionAge
    for (const slot of this.#slots) {
      if (slot.busy) continue
      if (age > 0 && this.#clock.now() - slot.createdAt >= age) {
        void slot.client.close()
        slot.client = this.#connection()
        slot.createdAt = this.#clock.now()
      }
      return slot
    }
    if (this.#slots.length >= this.#options.count) return undefined
    const slot: Slot = { client: this.#connection(), createdAt: this.#clock.now(), busy: false }
    this.#slots.push(slot)
    return slot
  }

  #connection(): UndiciClient {
    const { lookup, connect, headersTimeout, bodyTimeout, connectTimeout } = this.#options
    return new UndiciClient(this.#origin, {
      headersTimeout,
      bodyTimeout,
      connectTimeout,
      connect: {
        ...connect,
        // net and tls ask for one address or all of them; our lookup always answers with all.
        lookup: ((hostname: string, lookupOptions: { all?: boolean }, callback: (...args: unknown[]) => void) =>
          lookup(hostname, { all: true }, (error, answer, family) => {
            const addresses = lookupAnswer(answer, family)
            if (lookupOptions.all) callback(error, addresses)
            else callback(error, addresses[0]?.address, addresses[0]?.family)
          })) as never,
      },
    })
  }

  /** Feeds the response back to the call; the connection takes the next waiting call when this one settles. */
  #send(slot: Slot, call: Call): void {
    const { request } = call
    const headers: Record<string, string | string[]> = { ...request.headers }
    headers.host = request.authority ?? this.#authority
    const body = request.body.forDispatch()
    slot.busy = true
    let settled = false
    const settle = () => {
      if (settled) return
      settled = true
      slot.busy = false
      const next = this.#waiting.shift()
      if (next !== undefined) this.run(next)
    }
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart: (controller) => {
        call.carriedBy((reason) => {
          controller.abort(reason)
          settle()
        })
        call.controller.onResume = () => controller.resume()
      },
      onResponseStart: (controller, statusCode, responseHeaders, statusMessage) => {
        if (statusCode < 200) return
        call.responseStarted(statusCode, responseHeaders as ResponseHeaders, statusMessage ?? '')
        if (call.controller.paused) controller.pause()
      },
      onResponseData: (controller, chunk) => {
        call.data(chunk)
        if (call.controller.paused) controller.pause()
      },
      onResponseEnd: (_controller, trailers) => {
        call.complete(trailers as ResponseHeaders)
        settle()
      },
      onResponseError: (_controller, error) => {
        const { headersTimeout, bodyTimeout } = this.#options
        const context = { origin: request.origin, headersTimeout: request.headersTimeout ?? headersTimeout, bodyTimeout: request.bodyTimeout ?? bodyTimeout }
        call.fail(fromUndici(error, context) as Error)
        settle()
      },
    }
    slot.client.dispatch(
      {
        path: request.path,
        method: request.method as Dispatcher.HttpMethod,
        headers,
        body: body === null || Buffer.isBuffer(body) ? body : Readable.from(body),
        headersTimeout: request.headersTimeout,
        bodyTimeout: request.bodyTimeout,
      },
      handler,
    )
  }
}

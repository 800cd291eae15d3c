/**
 * A fleet of real drainpipe clients on one virtual clock, each sending a
 * steady stream of requests through `dispatch()` (the cheapest request API:
 * no promise, no body) with one shared, stateless handler.
 *
 * A request that is not written to a connection during its own `dispatch()`
 * call found no usable connection: it waits for a handshake. The network
 * counts streams opened, so the load sees that without any per-request
 * state; only the waiting requests are remembered, to time their wait. A
 * client's first requests wait for its first connections: those are counted
 * apart, as cold starts.
 */
import type { Dispatcher } from 'undici'
import { Client } from '../lib/client.js'
import { kEngine, type Engine } from '../lib/engine.js'
import type { ClientOptions } from '../lib/options.js'
import type { VirtualClock } from './clock.js'
import type { Metrics } from './metrics.js'
import type { Network, SimDns } from './network.js'

export interface FleetOptions {
  clients: number
  /** The origin every client sends to (a name, so that every connection looks it up). */
  origin: string
  /** The clients' options; clock, random and lookup are the simulation's. */
  client: ClientOptions
  /** Requests per second per client. */
  rate: number
  /** `paced`: one request every 1/rate s; `poisson`: exponential gaps of that mean. */
  arrivals: 'paced' | 'poisson'
  /** Clients start (send their first request) spread evenly over this many ms: a deploy of the fleet. */
  startSpread: number
  /** Virtual time at which the load stops. */
  until: number
}

/** The simulated fleet: its clients, and the load that drives them. */
export class Fleet {
  readonly clients: Client[] = []
  readonly #clock: VirtualClock
  readonly #metrics: Metrics
  readonly #network: Network
  readonly #options: FleetOptions
  readonly #random: () => number
  readonly #request: Dispatcher.DispatchOptions
  /** Dispatch times of the requests that waited, by the controller drainpipe gave them. */
  readonly #waiting = new Map<object, number>()
  /** The controller of the request being dispatched (set by the handler's first callback, synchronously). */
  #current: object | undefined
  readonly #handler: Dispatcher.DispatchHandler

  constructor(clock: VirtualClock, network: Network, dns: SimDns, metrics: Metrics, random: () => number, options: FleetOptions) {
    this.#clock = clock
    this.#network = network
    this.#metrics = metrics
    this.#options = options
    this.#random = random
    this.#request = { origin: options.origin, path: '/', method: 'GET' }
    const waiting = this.#waiting
    this.#handler = {
      onRequestStart: (controller: object) => {
        this.#current = controller
      },
      onResponseStart: () => {},
      onResponseData: () => {},
      onResponseEnd: (controller: object) => {
        const since = waiting.get(controller)
        if (since === undefined) return
        waiting.delete(controller)
        const waited = clock.now() - since - network.options.serviceTime
        if (waited > metrics.longestWait) metrics.longestWait = waited
      },
      onResponseError: (controller: object, error: Error) => {
        waiting.delete(controller)
        metrics.failure(error)
      },
    } as Dispatcher.DispatchHandler
    // The simulated network goes in under the internal engine key (not part of ClientOptions' type).
    const withEngine: ClientOptions & { [kEngine]: Engine } = { ...options.client, clock, random, lookup: dns.lookup, [kEngine]: network }
    for (let i = 0; i < options.clients; i++) {
      const client = new Client(withEngine)
      this.clients.push(client)
      const start = options.clients > 1 ? (options.startSpread * i) / (options.clients - 1) : 0
      this.#drive(client, start)
    }
  }

  #drive(client: Client, start: number): void {
    const clock = this.#clock
    const { rate, arrivals, until } = this.#options
    const interval = 1000 / rate
    const gap = arrivals === 'paced' ? () => interval : () => -Math.log(1 - this.#random()) * interval
    // Until a request of this client was sent at once, waiting is its cold start, not a handshake it was made to wait for.
    let warm = false
    const tick = () => {
      if (clock.now() >= until) return
      warm = this.#send(client, warm) || warm
      clock.setTimeout(tick, gap())
    }
    // A random phase within the first gap: clients that start together do not send in lockstep.
    clock.setTimeout(tick, start + this.#random() * interval)
  }

  /** Sends one request; true if it went to a connection at once. */
  #send(client: Client, warm: boolean): boolean {
    const metrics = this.#metrics
    const opened = this.#network.opened
    const failed = metrics.failed
    metrics.requests++
    this.#current = undefined
    client.dispatch(this.#request, this.#handler)
    if (this.#network.opened !== opened) return true
    if (metrics.failed !== failed) return false
    if (!warm) {
      metrics.coldStarts++
      return false
    }
    metrics.waited++
    metrics.waitedPerBucket[metrics.index(this.#clock.now())]!++
    if (this.#current !== undefined) this.#waiting.set(this.#current, this.#clock.now())
    return false
  }
}

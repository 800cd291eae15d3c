/**
 * The simulated world behind drainpipe's two seams: backends, an `Engine`
 * (lib/engine.ts) whose connections reach them, and a DNS that a scenario
 * changes over virtual time (the `lookup` option). Nothing above the seams
 * is simulated: the clients are real `Client`s, with their origins, shards,
 * pools, pick, recycling and backoff.
 *
 * A connection costs its backend one TLS handshake when accepted, and is
 * open `handshake` ms later; a request is answered `serviceTime` ms after it
 * is opened, with no body. Per request the engine keeps one small object
 * and one timer.
 */
import type { Clock, TimerHandle } from '../lib/clock.js'
import type {
  Connection,
  ConnectionListener,
  ConnectTarget,
  Engine,
  RequestHead,
  ResponseHeaders,
  Stream,
  StreamHandler,
} from '../lib/engine.js'
import { ConnectError, ConnectionLostError, ReadOnlyError } from '../lib/errors.js'
import type { LookupFunction } from '../lib/options.js'
import type { BackendSeries, Metrics } from './metrics.js'

export interface NetworkOptions {
  /** TCP + TLS + the server's SETTINGS (ms). */
  handshake: number
  /**
   * Measured connect times (ms) to draw each handshake's from instead, at
   * random: a loaded machine's are far from constant, and every recycle
   * round comes later by its connect time.
   */
  handshakeSamples: readonly number[]
  /** A round trip (ms): a refused connect, a PING, a close. */
  rtt: number
  /** From a request's HEADERS to its complete response (ms). */
  serviceTime: number
  /** From a lookup to its answer (ms). */
  dnsLatency: number
  /** SETTINGS_MAX_CONCURRENT_STREAMS of every backend. */
  maxConcurrentStreams: number
}

/** Where a backend is: serving, draining after its GOAWAY (refusing new connections), or gone. */
export type BackendState = 'up' | 'draining' | 'down'

export class Backend {
  readonly address: string
  readonly series: BackendSeries
  state: BackendState = 'up'
  readonly connections = new Set<SimConnection>()

  constructor(address: string, series: BackendSeries) {
    this.address = address
    this.series = series
  }
}

const NO_FIELDS: ResponseHeaders = Object.freeze({}) as ResponseHeaders
const NO_DEBUG = Buffer.alloc(0)

export class Network implements Engine {
  readonly name = 'simulated'
  readonly clock: Clock
  readonly options: NetworkOptions
  readonly metrics: Metrics
  readonly #random: () => number
  readonly #backends = new Map<string, Backend>()
  /** Streams opened so far: the load tells from it whether a request was sent at once. */
  opened = 0

  constructor(clock: Clock, metrics: Metrics, options: NetworkOptions, random: () => number) {
    this.clock = clock
    this.metrics = metrics
    this.options = options
    this.#random = random
  }

  /** How long the next handshake takes. */
  #handshake(): number {
    const samples = this.options.handshakeSamples
    return samples.length === 0 ? this.options.handshake : samples[Math.floor(this.#random() * samples.length)]!
  }

  /** Starts a backend (again) at `address`: it accepts connections from now on. */
  start(address: string): Backend {
    let backend = this.#backends.get(address)
    if (backend === undefined) {
      backend = new Backend(address, this.metrics.backend(address))
      this.#backends.set(address, backend)
    }
    backend.state = 'up'
    return backend
  }

  /**
   * A graceful stop, as a terminating pod's server does: new connections are
   * refused, every connection gets GOAWAY (NO_ERROR, every stream processed),
   * and each closes once its streams are done.
   */
  drain(address: string): void {
    const backend = this.#backends.get(address)
    if (backend === undefined || backend.state !== 'up') return
    backend.state = backend.connections.size === 0 ? 'down' : 'draining'
    for (const connection of [...backend.connections]) connection.goaway()
  }

  /** The backend dies: its connections are lost with their streams, connects are refused. */
  crash(address: string): void {
    const backend = this.#backends.get(address)
    if (backend === undefined) return
    backend.state = 'down'
    for (const connection of [...backend.connections]) connection.crash()
  }

  /** A connection closed: a draining backend whose last one went is down. */
  detach(connection: SimConnection): void {
    const backend = connection.backend
    backend.connections.delete(connection)
    if (backend.state === 'draining' && backend.connections.size === 0) backend.state = 'down'
  }

  /** Open connections per backend, into bucket `index`. */
  sample(index: number): void {
    for (const backend of this.#backends.values()) backend.series.connections[index] = backend.connections.size
  }

  /**
   * The first address that accepts, in the order given (Happy Eyeballs: an
   * address that refuses costs a round trip, then the next is tried).
   */
  connect(target: ConnectTarget, signal: AbortSignal): Promise<Connection> {
    const { clock, options } = this
    return new Promise<Connection>((resolve, reject) => {
      if (signal.aborted) {
        reject(signal.reason as Error)
        return
      }
      let refused = 0
      let backend: Backend | undefined
      for (const address of target.addresses) {
        const candidate = this.#backends.get(address)
        if (candidate?.state === 'up') {
          backend = candidate
          break
        }
        refused++
      }
      const delay = refused * options.rtt + (backend === undefined ? 0 : this.#handshake())
      if (backend !== undefined) backend.series.handshakes[this.metrics.index(clock.now() + refused * options.rtt)]!++
      const onAbort = () => {
        clock.clearTimeout(timer)
        reject(signal.reason as Error)
      }
      const timer: TimerHandle = clock.setTimeout(() => {
        signal.removeEventListener('abort', onAbort)
        if (backend?.state !== 'up') {
          reject(new ConnectError(`Could not connect to ${target.origin} (${target.addresses.join(', ')}: refused)`))
          return
        }
        const connection = new SimConnection(this, backend, target.origin)
        backend.connections.add(connection)
        resolve(connection)
      }, delay)
      signal.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** The `lookup` of a DNS whose answers the scenario sets. */
  dns(options: DnsOptions): SimDns {
    return new SimDns(this.clock, this.metrics, this.options.dnsLatency, options)
  }
}

class SimStream implements Stream {
  readonly id: number
  readonly handler: StreamHandler
  readonly #connection: SimConnection
  timer: TimerHandle | undefined

  constructor(connection: SimConnection, id: number, handler: StreamHandler) {
    this.#connection = connection
    this.id = id
    this.handler = handler
  }

  write(): boolean {
    return true
  }

  end(): void {}

  pause(): void {}

  resume(): void {}

  reset(): void {
    this.#connection.reset(this)
  }
}

export class SimConnection implements Connection {
  readonly backend: Backend
  readonly address: string
  readonly maxConcurrentStreams: number
  lastReceivedAt: number
  readonly #network: Network
  readonly #origin: string
  readonly #streams = new Set<SimStream>()
  #listener: ConnectionListener | undefined
  #nextId = 1
  /** The server's GOAWAY arrived (or is held until someone listens). */
  #goaway = false
  #goawayHeld = false
  /** Our close(): GOAWAY and FIN once the streams are done. */
  #closing = false
  #ending = false
  #failed = false

  constructor(network: Network, backend: Backend, origin: string) {
    this.#network = network
    this.backend = backend
    this.address = backend.address
    this.#origin = origin
    this.maxConcurrentStreams = network.options.maxConcurrentStreams
    this.lastReceivedAt = network.clock.now()
  }

  get activeStreams(): number {
    return this.#streams.size
  }

  get accepting(): boolean {
    return !this.#failed && !this.#closing && !this.#goaway
  }

  listen(listener: ConnectionListener): void {
    this.#listener = listener
    if (this.#goawayHeld) this.#sendGoaway()
  }

  open(_head: RequestHead, _endStream: boolean, handler: StreamHandler): Stream {
    if (!this.accepting) throw new ReadOnlyError(`The simulated connection to ${this.address} takes no new stream; the request was not sent`)
    if (this.#streams.size >= this.maxConcurrentStreams) throw new ReadOnlyError(`The simulated connection to ${this.address} has no free stream`)
    const stream = new SimStream(this, this.#nextId, handler)
    this.#nextId += 2
    this.#streams.add(stream)
    this.#network.opened++
    stream.timer = this.#network.clock.setTimeout(() => this.respond(stream), this.#network.options.serviceTime)
    return stream
  }

  respond(stream: SimStream): void {
    if (!this.#streams.delete(stream)) return
    const network = this.#network
    this.lastReceivedAt = network.clock.now()
    this.backend.series.completions[network.metrics.index(this.lastReceivedAt)]!++
    stream.handler.response(200, NO_FIELDS)
    stream.handler.end(NO_FIELDS)
    this.#endWhenIdle()
  }

  reset(stream: SimStream): void {
    if (!this.#streams.delete(stream)) return
    this.#network.clock.clearTimeout(stream.timer)
    this.#endWhenIdle()
  }

  ping(acked: (error?: Error) => void): void {
    const clock = this.#network.clock
    clock.setTimeout(() => {
      if (this.#failed) {
        acked(new ConnectionLostError(`The simulated connection to ${this.address} ended before the PING's ACK`))
        return
      }
      this.lastReceivedAt = clock.now()
      acked()
    }, this.#network.options.rtt)
  }

  close(): void {
    if (this.#closing || this.#failed) return
    this.#closing = true
    this.#endWhenIdle()
  }

  destroy(error?: Error): void {
    if (this.#failed) return
    this.#fail(error ?? new ConnectionLostError(`The simulated connection to ${this.address} was destroyed`), false)
    // The socket's close is reported, as a real engine does, after the fact.
    this.#network.clock.setTimeout(() => this.#listener?.closed(), 0)
  }

  /** The backend drains: GOAWAY above every stream sent so far; the server closes once they are done. */
  goaway(): void {
    if (this.#goaway || this.#failed) return
    this.#goaway = true
    if (this.#listener === undefined) this.#goawayHeld = true
    else this.#sendGoaway()
    this.#endWhenIdle()
  }

  /** The backend died under the connection. */
  crash(): void {
    if (this.#failed) return
    this.#fail(new ConnectionLostError(`${this.#origin} closed the connection (the simulated backend ${this.address} crashed)`), true)
    this.#listener?.closed()
  }

  #sendGoaway(): void {
    this.#goawayHeld = false
    this.#listener!.goaway({ errorCode: 0, lastStreamId: Math.max(0, this.#nextId - 2), debug: NO_DEBUG })
  }

  /** Either side said it is done and no stream is left: the socket closes a round trip later. */
  #endWhenIdle(): void {
    if (this.#ending || this.#failed || this.#streams.size > 0 || !(this.#closing || this.#goaway)) return
    this.#ending = true
    this.#network.clock.setTimeout(() => {
      if (this.#failed) return
      this.#failed = true
      this.#network.detach(this)
      this.#listener?.closed()
    }, this.#network.options.rtt)
  }

  /** The connection is over: `error` to the listener when `report`, then every open stream is lost. */
  #fail(reason: Error, report: boolean): void {
    this.#failed = true
    this.#network.detach(this)
    if (report) this.#listener?.error(reason)
    const clock = this.#network.clock
    for (const stream of [...this.#streams]) {
      clock.clearTimeout(stream.timer)
      stream.handler.closed({ code: undefined, by: undefined, error: undefined, lost: reason, unprocessed: false })
    }
    this.#streams.clear()
  }
}

/** The order of the addresses in an answer. */
export type DnsOrder = 'shuffle' | 'rotate' | 'fixed'

export interface DnsOptions {
  /**
   * `shuffle`: a random order per answer (CoreDNS's `loadbalance`);
   * `rotate`: round robin, one step per answer across all clients (BIND's
   * `rrset-order cyclic`); `fixed`: always the order set (the in-repo DNS
   * server of the demo, or a resolver that sorts).
   */
  order: DnsOrder
  random: () => number
}

/** What DNS does when asked: answer, fail at once (SERVFAIL), or never answer (the client's connect timeout ends the wait). */
export type DnsMode = 'answer' | 'servfail' | 'timeout'

export class SimDns {
  readonly #clock: Clock
  readonly #metrics: Metrics
  readonly #latency: number
  readonly #options: DnsOptions
  readonly #records = new Map<string, readonly string[]>()
  #rotation = 0
  mode: DnsMode = 'answer'
  lookups = 0
  failures = 0

  constructor(clock: Clock, metrics: Metrics, latency: number, options: DnsOptions) {
    this.#clock = clock
    this.#metrics = metrics
    this.#latency = latency
    this.#options = options
  }

  /** From now on, `name` resolves to `addresses`. */
  set(name: string, addresses: readonly string[]): void {
    this.#records.set(name, [...addresses])
    this.#metrics.dns.push({ t: this.#clock.now(), addresses: [...addresses] })
  }

  readonly lookup: LookupFunction = (hostname, _options, callback) => {
    this.lookups++
    const mode = this.mode
    if (mode === 'timeout') {
      this.failures++
      return
    }
    this.#clock.setTimeout(() => {
      const addresses = this.#records.get(hostname) ?? []
      if (mode === 'servfail' || addresses.length === 0) {
        this.failures++
        const code = mode === 'servfail' ? 'ESERVFAIL' : 'ENOTFOUND'
        callback(Object.assign(new Error(`queryA ${code} ${hostname}`), { code, hostname }), [])
        return
      }
      callback(null, this.#order(addresses).map((address) => ({ address, family: 4 })))
    }, this.#latency)
  }

  #order(addresses: readonly string[]): string[] {
    const list = [...addresses]
    switch (this.#options.order) {
      case 'fixed':
        return list
      case 'rotate': {
        const shift = this.#rotation++ % list.length
        return [...list.slice(shift), ...list.slice(0, shift)]
      }
      case 'shuffle': {
        const random = this.#options.random
        for (let i = list.length - 1; i > 0; i--) {
          const j = Math.floor(random() * (i + 1))
          const swap = list[i]!
          list[i] = list[j]!
          list[j] = swap
        }
        return list
      }
    }
  }
}

/**
 * The pods behind a headless service: HTTP/2 backends on 127.0.0.2, .3, …
 * sharing one port, that can be scaled out, stopped gracefully (as a pod
 * that received SIGTERM: GOAWAY, finish in-flight streams, close) and
 * started again on the same address and port.
 */
import { startBackend, startBackends, type Backend, type BackendOptions } from './h2-server.js'

export interface FleetOptions extends BackendOptions {
  /** Last octet of the first backend's address. Default 2 (127.0.0.2). */
  firstHost?: number
  /** How long a graceful stop waits for open streams before destroying sessions (ms). Default 5000. */
  stopTimeout?: number
}

export class Fleet {
  readonly port: number
  readonly #options: FleetOptions
  readonly #first: number
  /** Running backends by address. */
  readonly #running = new Map<string, Backend>()
  /** Every address ever started, in order. */
  readonly #known: string[] = []

  private constructor(port: number, options: FleetOptions) {
    this.port = port
    this.#options = options
    this.#first = options.firstHost ?? 2
  }

  /** Starts `count` backends on 127.0.0.{first…} sharing one free port. */
  static async start(count: number, options: FleetOptions = {}): Promise<Fleet> {
    const backends = await startBackends(count, { ...options, firstHost: options.firstHost ?? 2 })
    const fleet = new Fleet(backends[0]!.port, options)
    for (const backend of backends) fleet.#adopt(backend)
    return fleet
  }

  /** Addresses of the running backends, in address order. */
  get hosts(): string[] {
    return this.#known.filter((host) => this.#running.has(host))
  }

  backend(host: string): Backend | undefined {
    return this.#running.get(host)
  }

  /** Starts backends until `count` are running, on the next addresses. Returns the new addresses. */
  async scaleTo(count: number): Promise<string[]> {
    const added: string[] = []
    for (let octet = this.#first; this.#running.size < count; octet++) {
      const host = `127.0.0.${octet}`
      if (this.#running.has(host)) continue
      await this.startAt(host)
      added.push(host)
    }
    return added
  }

  /** Starts (or restarts) the backend at `host` on the fleet's port. */
  async startAt(host: string): Promise<Backend> {
    if (this.#running.has(host)) throw new Error(`A backend already runs at ${host}`)
    const backend = await startBackend({ ...this.#options, host, port: this.port })
    this.#adopt(backend)
    return backend
  }

  /**
   * Stops the backend at `host` as a terminating pod does: no new connections, GOAWAY (NO_ERROR) on every
   * session, open streams finish; sessions still open after `stopTimeout` are destroyed.
   */
  async stop(host: string): Promise<void> {
    const backend = this.#running.get(host)
    if (backend === undefined) return
    this.#running.delete(host)
    const closed = new Promise<void>((resolve) => backend.server.close(() => resolve()))
    for (const session of backend.sessions) if (!session.closed) session.close()
    const timeout = setTimeout(() => {
      for (const session of backend.sessions) session.destroy()
    }, this.#options.stopTimeout ?? 5000)
    await closed
    clearTimeout(timeout)
  }

  /** Stops every backend at once (not gracefully). */
  async close(): Promise<void> {
    const running = [...this.#running.values()]
    this.#running.clear()
    // A connection still held by `acceptDelay` becomes a session after close() destroyed the others; it must not keep the server open.
    for (const backend of running) backend.server.on('session', (session) => session.destroy())
    await Promise.all(running.map((backend) => backend.close()))
  }

  #adopt(backend: Backend): void {
    this.#running.set(backend.host, backend)
    if (!this.#known.includes(backend.host)) {
      this.#known.push(backend.host)
      this.#known.sort((a, b) => Number(a.split('.')[3]) - Number(b.split('.')[3]))
    }
  }
}

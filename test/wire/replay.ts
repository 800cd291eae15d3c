/**
 * Replays a server's bytes into the wire engine without a network: the
 * engine runs over `ReplaySocket`, an in-process stand-in for a net.Socket
 * that hands it exactly the chunks a test chose, one socket read each, and
 * keeps what the engine writes. Everything the engine reports is checked
 * against the seam's contract (lib/engine.ts) as it happens; `replay()`
 * returns what broke it, if anything, and each stream's outcome.
 */
import { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import type { ConnectionListener, Goaway, LocalSettings, ResponseHeaders, StreamClosed } from '../../lib/engine.js'
import { ConnectTimeoutError, DrainpipeError } from '../../lib/errors.js'
import { handshakeOver, type WireConnection } from '../../lib/wire/connection.js'
import { HpackError } from '../../lib/wire/hpack.js'
import { ManualClock } from '../helpers/manual-clock.js'
import type { HostileConnection } from '../hostile/server.js'
import { Recorder } from './harness.js'
import { outcomeOf, requestBody, type LoadedSession, type Outcome } from './sessions.js'

/**
 * Records, as violations, exceptions nobody caught and promise rejections
 * nobody handled while it watches (vitest would report them too, but not
 * which run of a property caused them).
 */
export function watchEscapes(violations: string[]): { stop(): void } {
  const uncaught = (error: unknown) => violations.push(`uncaught: ${error instanceof Error ? error.stack : String(error)}`)
  const unhandled = (reason: unknown) => violations.push(`unhandled rejection: ${reason instanceof Error ? reason.stack : String(reason)}`)
  process.on('uncaughtExceptionMonitor', uncaught)
  process.on('unhandledRejection', unhandled)
  return {
    stop() {
      process.off('uncaughtExceptionMonitor', uncaught)
      process.off('unhandledRejection', unhandled)
    },
  }
}

/** A turn of the event loop: what the engine put off with nextTick (flushes, held bodies) happens. */
export const turn = () => new Promise<void>((resolve) => setImmediate(resolve))

/**
 * The engine's side of a socket, driven by the test: `deliver()` is one
 * socket read, `serverEnd()` the server's FIN. It honours pause() (reads
 * wait), allowHalfOpen false (our FIN follows the server's), end(callback)
 * and destroy() as net.Socket does, as far as the engine can tell.
 */
export class ReplaySocket extends EventEmitter {
  /** What the engine wrote, in order. */
  readonly written: Buffer[] = []
  /** Writes after end() or destroy(): a net.Socket would fail them. */
  readonly misuse: string[] = []
  destroyed = false
  #paused = false
  #waiting: Buffer[] = []
  #ended = false
  #remoteEnded = false
  /** write() returns false and 'drain' follows a turn later: the engine's blocked-socket path. */
  readonly #blocking: boolean

  constructor(blocking: boolean) {
    super()
    this.#blocking = blocking
  }

  write(chunk: Buffer): boolean {
    if (this.destroyed || this.#ended) {
      this.misuse.push(`the engine wrote ${chunk.length} octets after ${this.destroyed ? 'destroy()' : 'end()'}`)
      return false
    }
    this.written.push(Buffer.from(chunk))
    if (!this.#blocking) return true
    setImmediate(() => {
      if (!this.destroyed) this.emit('drain')
    })
    return false
  }

  cork(): void {}
  uncork(): void {}

  pause(): this {
    this.#paused = true
    return this
  }

  resume(): this {
    this.#paused = false
    while (!this.#paused && !this.destroyed && this.#waiting.length > 0) this.emit('data', this.#waiting.shift()!)
    return this
  }

  end(callback?: () => void): this {
    if (this.#ended) return this
    this.#ended = true
    setImmediate(() => {
      callback?.()
      if (this.#remoteEnded) this.destroy()
    })
    return this
  }

  destroy(): this {
    if (this.destroyed) return this
    this.destroyed = true
    this.#waiting = []
    process.nextTick(() => this.emit('close', false))
    return this
  }

  /** One socket read of the server's bytes (held while paused, dropped once destroyed). */
  deliver(chunk: Buffer): void {
    if (this.destroyed) return
    if (this.#paused || this.#waiting.length > 0) this.#waiting.push(chunk)
    else this.emit('data', chunk)
  }

  /** Whether reads are waiting for resume(). */
  get holding(): boolean {
    return this.#waiting.length > 0
  }

  /** The server's FIN, once every byte before it was read. */
  serverEnd(): void {
    if (this.destroyed || this.#remoteEnded) return
    this.#remoteEnded = true
    this.emit('end')
    if (this.#ended) this.destroy()
    else this.end()
  }
}

/** What the listener heard, checked against ConnectionListener's contract as it arrives. */
class CheckedListener implements ConnectionListener {
  closedCalls = 0
  readonly goaways: Goaway[] = []
  constructor(readonly violations: string[]) {}
  settings(): void {
    if (this.closedCalls > 0) this.violations.push('settings() after closed()')
  }
  goaway(goaway: Goaway): void {
    if (this.closedCalls > 0) this.violations.push('goaway() after closed()')
    this.goaways.push(goaway)
  }
  error(error: Error): void {
    if (this.closedCalls > 0) this.violations.push('error() after closed()')
    typed(this.violations, 'listener.error', error)
  }
  closed(): void {
    if (++this.closedCalls > 1) this.violations.push('closed() twice')
  }
}

/**
 * A DrainpipeError, and so is every cause under it (HPACK's own error aside,
 * the reason of a COMPRESSION_ERROR): over a ReplaySocket no socket fails
 * and no handler throws, so anything else the engine wrapped (it fails the
 * connection with whatever it caught while reading) is its own bug.
 */
function typed(violations: string[], where: string, error: unknown): void {
  for (let cause = error; cause !== undefined; cause = (cause as Error).cause) {
    if (!(cause instanceof DrainpipeError) && !(cause instanceof HpackError && cause !== error)) {
      violations.push(`${where}: ${cause === error ? '' : `${(error as Error).constructor.name} caused by `}not a DrainpipeError: ${cause instanceof Error ? cause.stack : String(cause)}`)
      return
    }
  }
}

/**
 * A Recorder that also checks StreamHandler's contract: a response at most
 * once, then data, then one of end or closed; nothing at all once the
 * exchange reset the stream (`resetAtResponse`: at its response, as a
 * caller that gives up on a download would).
 */
class CheckedRecorder extends Recorder {
  /** The test reset the stream: no call may follow. */
  wasReset = false
  constructor(
    readonly violations: string[],
    readonly index: number,
    readonly resetAtResponse: boolean,
  ) {
    super()
  }
  #terminal(what: string): boolean {
    if (this.wasReset) {
      this.violations.push(`request ${this.index}: ${what} after our reset`)
      return true
    }
    const done = this.calls.includes('end') || this.calls.includes('closed')
    if (done) this.violations.push(`request ${this.index}: ${what} after ${this.calls.includes('end') ? 'end' : 'closed'}`)
    return done
  }
  override response(status: number, headers: ResponseHeaders): void {
    if (!this.#terminal('response') && this.status !== 0) this.violations.push(`request ${this.index}: a second response`)
    super.response(status, headers)
    if (this.resetAtResponse) {
      this.wasReset = true
      this.stream.reset()
    }
  }
  override data(chunk: Buffer): void {
    if (!this.#terminal('data') && this.status === 0) this.violations.push(`request ${this.index}: data before the response`)
    super.data(chunk)
  }
  override end(trailers: ResponseHeaders): void {
    if (!this.#terminal('end') && this.status === 0) this.violations.push(`request ${this.index}: end without a response`)
    super.end(trailers)
  }
  override closed(why: StreamClosed): void {
    this.#terminal('closed')
    if (why.error !== undefined) typed(this.violations, `request ${this.index}: closed.error`, why.error)
    if (why.lost !== undefined) typed(this.violations, `request ${this.index}: closed.lost`, why.lost)
    super.closed(why)
  }
}

/** How one replay goes: the bytes, where they are cut, and what the client does meanwhile. */
export interface ReplayPlan {
  session: LoadedSession
  /** The server's bytes, mutated or not. */
  bytes: Buffer
  /** Socket reads: the octets of each (the last read takes what is left), and whether a turn passes after it. */
  reads: { size: number; turnAfter: boolean }[]
  /** The server sends FIN after its last byte; otherwise the client ends the connection (close(), then destroy()). */
  serverEnds: boolean
  /** Every socket write returns false ('drain' a turn later). */
  blockWrites: boolean
  /** Requests (by index) whose stream is paused at its response and resumed once every byte was read. */
  pause: number[]
  /** Requests (by index) whose stream is reset (CANCEL) at its response. */
  reset: number[]
  /** Our windows and limits. */
  settings: LocalSettings
}

export interface ReplayResult {
  /** Broken contracts: empty when the engine behaved. */
  violations: string[]
  /** The connection came up (the server's first SETTINGS was read). */
  connected: boolean
  /** Each request's outcome, by request (undefined: never opened, or reset by the test). */
  outcomes: (Outcome | undefined)[]
}

const HOST = '127.0.0.1'
const url = new URL('http://api.test')

/**
 * Runs a session's requests over a ReplaySocket fed `plan.bytes`, then ends
 * the connection, and checks that nothing escaped (no throw out of a socket
 * event, nothing thrown on a later tick), every error was a DrainpipeError,
 * every stream's handler heard exactly one of end or closed, every PING was
 * answered once, the listener heard closed() once, and nothing was left:
 * the socket destroyed, no timer pending.
 */
export async function replay(plan: ReplayPlan): Promise<ReplayResult> {
  const violations: string[] = []
  const escapes = watchEscapes(violations)
  const escaped = (error: unknown) => violations.push(`thrown out of a socket event: ${error instanceof Error ? error.stack : String(error)}`)
  const socket = new ReplaySocket(plan.blockWrites)
  const clock = new ManualClock()
  const listener = new CheckedListener(violations)
  const recorders: (CheckedRecorder | undefined)[] = []
  let connection: WireConnection | undefined
  let pings = 0
  const ping = (error?: Error) => {
    pings++
    if (error !== undefined) typed(violations, 'ping', error)
  }
  // The pool's connect timeout: aborts a handshake the bytes never completed.
  const connectTimeout = new AbortController()
  const connecting = handshakeOver(
    socket as unknown as Socket,
    HOST,
    { origin: url.origin, url, addresses: [HOST], tls: {}, settings: plan.settings, clock },
    connectTimeout.signal,
  ).then(
    (up) => {
      // What the pool does once connected: listen, then open its streams at once.
      connection = up
      up.listen(listener)
      plan.session.requests.forEach((request, index) => {
        const recorder = new CheckedRecorder(violations, index, plan.reset.includes(index))
        if (plan.pause.includes(index)) recorder.onResponse = () => recorder.stream.pause()
        const body = requestBody(request)
        try {
          recorder.stream = up.open(
            { method: request.method, scheme: 'http', authority: url.host, path: request.path, headers: request.headers ?? {} },
            body === undefined,
            recorder,
          )
        } catch (error) {
          typed(violations, `open(${index})`, error)
          return
        }
        recorders[index] = recorder
        if (body !== undefined) {
          recorder.stream.write(body)
          recorder.stream.end()
        }
      })
      if (plan.session.ping) up.ping(ping)
    },
    (error: unknown) => typed(violations, 'connect', error),
  )
  try {
    let offset = 0
    for (const [i, read] of plan.reads.entries()) {
      const size = i === plan.reads.length - 1 ? plan.bytes.length - offset : read.size
      const chunk = plan.bytes.subarray(offset, offset + size)
      offset += chunk.length
      try {
        socket.deliver(chunk)
      } catch (error) {
        escaped(error)
      }
      if (read.turnAfter) await turn()
    }
    await turn()
    for (const index of plan.pause) recorders[index]?.stream.resume()
    await turn()
    if (plan.serverEnds) {
      try {
        socket.serverEnd()
      } catch (error) {
        escaped(error)
      }
      // A connection the server ended must settle by itself: no close() or destroy() from us.
      await settled(() => listener.closedCalls > 0)
      if (connection !== undefined && listener.closedCalls === 0) violations.push('the server ended the connection but closed() was not reported')
      for (const recorder of recorders) {
        if (recorder !== undefined && !recorder.wasReset && !finished(recorder)) violations.push(`request ${recorder.index} did not settle after the server's FIN: ${recorder.calls.join(' ')}`)
      }
    }
    if (connection === undefined) connectTimeout.abort(new ConnectTimeoutError(0, 'the replay ended before the handshake did'))
    await connecting
    if (connection !== undefined) {
      // Graceful first: a connection without open streams ends by itself.
      connection.close()
      await turn()
      connection.destroy()
    }
    await settled(() => socket.destroyed && (connection === undefined || listener.closedCalls > 0))
  } finally {
    escapes.stop()
  }

  violations.push(...socket.misuse)
  if (!socket.destroyed) violations.push('the socket was left open')
  if (connection !== undefined && listener.closedCalls !== 1) violations.push(`closed() reported ${listener.closedCalls} times`)
  if (clock.pending().length > 0) violations.push(`timers left pending: ${clock.pending().join(', ')} ms`)
  if (connection !== undefined && plan.session.ping && pings !== 1) violations.push(`the PING's callback ran ${pings} times`)
  for (const recorder of recorders) {
    if (recorder === undefined) continue
    const terminal = recorder.calls.filter((call) => call === 'end' || call === 'closed').length
    if (terminal !== (recorder.wasReset ? 0 : 1)) violations.push(`request ${recorder.index}: ${terminal} of end/closed (${recorder.calls.join(' ')})`)
  }
  return {
    violations,
    connected: connection !== undefined,
    outcomes: plan.session.requests.map((_, index) => {
      const recorder = recorders[index]
      return recorder === undefined || !finished(recorder) ? undefined : outcomeOf(recorder)
    }),
  }
}

const finished = (recorder: Recorder) => recorder.calls.includes('end') || recorder.calls.includes('closed')

/** Turns until `done` holds, at most 20 (the socket's own events take a few). */
async function settled(done: () => boolean): Promise<void> {
  for (let i = 0; i < 20 && !done(); i++) await turn()
}

/**
 * A connection of test/hostile/server.ts made to replay a server's bytes:
 * its automatic answers off (the recording has the server's own ACKs), the
 * reads written in order with a turn between them, then FIN, or nothing
 * more (the client must end it).
 */
export async function replayOver(connection: HostileConnection, plan: ReplayPlan): Promise<void> {
  connection.answerSettings = false
  connection.answerPings = false
  let offset = 0
  for (const [i, read] of plan.reads.entries()) {
    const size = i === plan.reads.length - 1 ? plan.bytes.length - offset : read.size
    connection.write(plan.bytes.subarray(offset, offset + size))
    offset += size
    await turn()
  }
  if (plan.serverEnds) connection.socket.end()
}

import type { Clock, TimerHandle } from './clock.js'
import { type Connection, Http2ErrorCode, errorCodeName, type ResponseHeaders, type Stream, type StreamClosed, type StreamHandler } from './engine.js'
import {
  BodyTimeoutError,
  ConnectionLostError,
  HeadersTimeoutError,
  ProtocolError,
  ReadOnlyError,
  RefusedStreamError,
} from './errors.js'
import type { BodySink } from './body.js'
import type { Call } from './call.js'
import { Outcome } from './health.js'
import type { Slotted } from './slot-set.js'

/** What an exchange needs from the pool that carries it. */
export interface ExchangeHost {
  readonly clock: Clock
  readonly scheme: 'https' | 'http'
  readonly authority: string
  readonly headersTimeout: number
  readonly bodyTimeout: number
  /** For messages: the limit a response head may have run into. */
  readonly maxHeaderFields: number
  /** A response head arrived: the connection serves. */
  answered(): void
  /** A request timed out: the connection may be dead. */
  suspect(): void
  /** The stream is gone, whatever the outcome (`exchange.outcome`): the slot is free. */
  released(exchange: Exchange): void
}

/** Statuses whose responses have no body whatever their content-length says (RFC 9110 §8.6). */
const bodyless = (method: string, status: number): boolean => method === 'HEAD' || status === 204 || status === 304

/** gRPC's UNAVAILABLE, in a trailers-only head or in trailers: a server error, as Envoy's outlier detection maps it (503). */
const GRPC_UNAVAILABLE = '14'

/**
 * One attempt of a request as one HTTP/2 stream: writes headers and body,
 * feeds the response to the call, checks that the body is as long as the
 * response said, and when the stream closes early decides what that means:
 * refused, above a GOAWAY, lost, or reset.
 */
export class Exchange implements StreamHandler, Slotted {
  readonly call: Call
  readonly #host: ExchangeHost
  #stream!: Stream
  /** The exchange's one timer: headers timeout, then body timeout (see #onTimer). */
  #timer: TimerHandle | undefined
  #timerDue = 0
  /** Set when the outcome was reported (or the caller cancelled): later stream events have nothing to say. */
  #settled = false
  #responded = false
  #lastData = 0
  /** The response's content-length, when it declared one that binds the body. */
  #declared: number | undefined
  #receivedBytes = 0
  #writable: (() => void) | undefined
  /** A status ≥ 500, or gRPC UNAVAILABLE. */
  #serverError = false
  /** How the exchange ended, for its address's health; set when it settles. */
  outcome: Outcome = Outcome.None
  /** Its place in the pool's exchanges. */
  slot = -1

  private constructor(host: ExchangeHost, call: Call) {
    this.#host = host
    this.call = call
  }

  /** Opens the stream. Returns undefined when the engine refused it (the call was told why). */
  static start(host: ExchangeHost, connection: Connection, call: Call): Exchange | undefined {
    const request = call.request
    const body = request.body
    let headers = request.headers
    if (body.length !== undefined && headers['content-length'] === undefined) headers = { ...headers, 'content-length': String(body.length) }
    const exchange = new Exchange(host, call)
    try {
      exchange.#stream = connection.open(
        { method: request.method, scheme: host.scheme, authority: request.authority ?? host.authority, path: request.path, headers },
        body.isEmpty,
        exchange,
      )
    } catch (error) {
      call.fail(error as Error)
      return undefined
    }
    call.carriedBy(() => exchange.#cancel())
    call.controller.onResume = () => {
      if (exchange.#settled) return
      exchange.#stream.resume()
      exchange.#armBodyTimer()
    }
    exchange.#armHeadersTimer()
    if (!body.isEmpty) body.send(exchange.#sink()).catch((error: Error) => exchange.terminate(error))
    return exchange
  }

  // ── StreamHandler: what the engine reports ───────────────────────────────

  response(status: number, headers: ResponseHeaders): void {
    if (this.#settled) return
    this.#responded = true
    this.#serverError = status >= 500 || headers['grpc-status'] === GRPC_UNAVAILABLE
    this.#host.answered()
    const declared = headers['content-length']
    if (typeof declared === 'string' && !bodyless(this.call.request.method, status)) this.#declared = Number(declared)
    this.call.responseStarted(status, headers, '')
    this.#afterDelivery()
  }

  data(chunk: Buffer): void {
    if (this.#settled) return
    this.#receivedBytes += chunk.length
    this.call.data(chunk)
    this.#afterDelivery()
  }

  end(trailers: ResponseHeaders): void {
    if (this.#settled) return
    const declared = this.#declared
    const incomplete = declared !== undefined && declared !== this.#receivedBytes
    if (trailers['grpc-status'] === GRPC_UNAVAILABLE) this.#serverError = true
    this.#settle(incomplete ? Outcome.Failure : Outcome.Success)
    if (incomplete) {
      this.call.fail(
        new ProtocolError(`The response ended after ${this.#receivedBytes} of ${declared} bytes (content-length): it is incomplete`, {
          http2Code: Http2ErrorCode.PROTOCOL_ERROR,
        }),
      )
      return
    }
    this.call.complete(trailers)
  }

  closed(why: StreamClosed): void {
    if (this.#settled) return
    const error = this.#closeReason(why)
    // Refused or above a GOAWAY: the server never saw it, which says nothing about its health.
    this.#settle(error instanceof RefusedStreamError || error instanceof ReadOnlyError ? Outcome.None : Outcome.Failure)
    this.call.fail(error)
  }

  writable(): void {
    const resume = this.#writable
    this.#writable = undefined
    resume?.()
  }

  // ── The rest ─────────────────────────────────────────────────────────────

  /**
   * Ends the stream with an error drainpipe decided: the drain deadline,
   * destroy, the request body's source failing (nothing learnt about the
   * server), or a timeout (`Outcome.Failure`).
   */
  terminate(error: Error, outcome: Outcome = Outcome.None): void {
    if (this.#cancel(outcome)) this.call.fail(error)
  }

  /** Where the request body goes: the stream, waiting for `writable()` when it is full. */
  #sink(): BodySink {
    return {
      write: (chunk) => this.#stream.write(chunk),
      end: () => this.#stream.end(),
      writable: () => new Promise<void>((resolve) => (this.#writable = resolve)),
      closed: () => this.#settled,
    }
  }

  /** Why a stream closed before its response was complete. */
  #closeReason(why: StreamClosed): Error {
    const { code, lost } = why
    const id = this.#stream.id
    // Once a response arrived the server processed the request, whatever it claims afterwards.
    if (code === Http2ErrorCode.REFUSED_STREAM && !this.#responded) return new RefusedStreamError()
    if (why.unprocessed && !this.#responded) {
      return new ReadOnlyError(
        `The server stopped taking streams (GOAWAY) before stream ${id ?? '(unsent)'} was processed; the request was not processed`,
      )
    }
    // The connection died with the stream accepted: whatever killed it, the outcome is unknown.
    if (lost) {
      return lost instanceof ConnectionLostError
        ? lost
        : new ConnectionLostError(`The connection was lost with the request in flight: ${lost.message}`, { cause: lost })
    }
    if (why.error) return why.error
    const incomplete =
      this.#declared !== undefined ? ` after ${this.#receivedBytes} of ${this.#declared} bytes (content-length)` : ''
    if (code !== undefined && code !== Http2ErrorCode.NO_ERROR) {
      const name = errorCodeName(code)
      const stage = this.#responded ? `the response body${incomplete ? ` ended${incomplete}` : ' was cut off'}` : 'no response arrived'
      return new ProtocolError(`${this.#resetter(why, name)}: ${stage}`, { http2Code: code })
    }
    return new ProtocolError(
      this.#responded
        ? `The stream closed before the response body ended${incomplete}`
        : 'The stream closed before a response arrived',
      { http2Code: code },
    )
  }

  /** Who reset the stream with `name`, as far as the engine can tell. */
  #resetter(why: StreamClosed, name: string): string {
    if (why.by === 'peer') return `The server reset the stream with ${name}`
    if (why.by === 'local') return `drainpipe reset the stream with ${name}`
    // node:http2 resets malformed responses itself, indistinguishably from the server.
    const local =
      name === 'PROTOCOL_ERROR' && this.#responded && this.#declared !== undefined && this.#receivedBytes !== this.#declared
        ? 'node:http2, as the body did not match its content-length'
        : name === 'ENHANCE_YOUR_CALM' && !this.#responded
          ? `node:http2, if the response had more than ${this.#host.maxHeaderFields} header fields (maxHeaderFields) or exceeded maxHeaderSize`
          : 'node:http2, if it found the response malformed'
    return `The stream was reset with ${name} (by the server, or by ${local})`
  }

  /**
   * Settles the exchange and resets its stream with CANCEL; false when it was
   * already settled. A caller's abort stops here: the call reports its own error.
   */
  #cancel(outcome: Outcome = Outcome.None): boolean {
    if (this.#settled) return false
    this.#stream.reset(Http2ErrorCode.CANCEL)
    this.#settle(outcome)
    return true
  }

  /** A server error stays one however the exchange ends, unless it failed outright. */
  #settle(outcome: Outcome): void {
    this.outcome = this.#serverError && outcome !== Outcome.Failure ? Outcome.ServerError : outcome
    this.#settled = true
    this.#clearTimer()
    this.writable()
    this.#host.released(this)
  }

  /** Applies the caller's backpressure: a paused caller stops the stream, and so the flow-control window. */
  #afterDelivery(): void {
    if (this.#settled) return
    if (this.call.controller.paused) {
      this.#stream.pause()
      this.#clearTimer()
    } else {
      this.#armBodyTimer()
    }
  }

  #armHeadersTimer(): void {
    const timeout = this.call.request.headersTimeout ?? this.#host.headersTimeout
    if (timeout > 0) this.#setTimer(timeout)
  }

  /**
   * Data arrived (or the caller resumed): the body timeout counts from now.
   * Re-arming a timer on every DATA frame, or swapping the headers timer for
   * a body timer at the response, shows in small requests' CPU profiles; a
   * pending timer that fires no later than the new deadline is kept, and
   * checks when it fires how long the body has really been quiet.
   */
  #armBodyTimer(): void {
    if (!this.#responded) return
    const now = this.#host.clock.now()
    this.#lastData = now
    const timeout = this.call.request.bodyTimeout ?? this.#host.bodyTimeout
    if (this.#timer !== undefined && (timeout <= 0 || this.#timerDue > now + timeout)) this.#clearTimer()
    if (timeout > 0 && this.#timer === undefined) this.#setTimer(timeout)
  }

  #setTimer(ms: number): void {
    const clock = this.#host.clock
    this.#timerDue = clock.now() + ms
    this.#timer = clock.setTimeout(() => this.#onTimer(), ms)
  }

  #onTimer(): void {
    this.#timer = undefined
    if (!this.#responded) {
      this.#expire(new HeadersTimeoutError(this.call.request.headersTimeout ?? this.#host.headersTimeout))
      return
    }
    const timeout = this.call.request.bodyTimeout ?? this.#host.bodyTimeout
    const quiet = this.#host.clock.now() - this.#lastData
    if (quiet < timeout) this.#setTimer(timeout - quiet)
    else this.#expire(new BodyTimeoutError(timeout))
  }

  /** A timeout ended the stream: the connection itself may be dead. */
  #expire(error: Error): void {
    this.terminate(error, Outcome.Failure)
    this.#host.suspect()
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) {
      this.#host.clock.clearTimeout(this.#timer)
      this.#timer = undefined
    }
  }
}

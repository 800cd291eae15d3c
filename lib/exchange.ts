import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2'
import type { Clock, TimerHandle } from './clock.js'
import {
  BodyTimeoutError,
  ConnectionLostError,
  DrainpipeError,
  HeadersTimeoutError,
  InvalidHeaderError,
  ProtocolError,
  ReadOnlyError,
  RefusedStreamError,
} from './errors.js'
import type { ResponseHeaders } from './handler.js'
import { responseHeaders } from './headers.js'
import type { Call } from './request.js'

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM, NGHTTP2_NO_ERROR } = http2.constants

/** What an exchange needs from the pool that carries it. */
export interface ExchangeHost {
  readonly clock: Clock
  readonly scheme: 'https' | 'http'
  readonly authority: string
  readonly headersTimeout: number
  readonly bodyTimeout: number
  /** Set once the server sent GOAWAY: streams above it were never processed. */
  readonly goawayLastStreamId: number | undefined
  /** Why the connection died, when it did (PING timeout, socket error). */
  readonly lostError: Error | undefined
  /** Something arrived from the peer: the connection is alive. */
  received(): void
  /** A request timed out: the connection may be dead. */
  suspect(): void
  /** The stream is gone, whatever the outcome: the slot is free. */
  released(exchange: Exchange): void
}

const codeName = (code: number): string =>
  Object.entries(http2.constants).find(([name, value]) => name.startsWith('NGHTTP2_') && value === code && !name.includes('SETTINGS'))?.[0] ??
  `code ${code}`

/** node:http2 throws synchronously on some inputs: turn those into typed errors, never uncaught exceptions. */
function requestFailure(error: NodeJS.ErrnoException): Error {
  switch (error.code) {
    case 'ERR_HTTP2_GOAWAY_SESSION':
    case 'ERR_HTTP2_INVALID_SESSION':
    case 'ERR_HTTP2_OUT_OF_STREAMS':
      return new ReadOnlyError(`The connection no longer accepts streams (${error.code}); the request was not processed`)
    case 'ERR_HTTP2_INVALID_HEADER_VALUE':
    case 'ERR_INVALID_HTTP_TOKEN':
    case 'ERR_INVALID_CHAR':
    case 'ERR_HTTP2_HEADER_SINGLE_VALUE':
    case 'ERR_HTTP2_INVALID_CONNECTION_HEADERS':
    case 'ERR_HTTP2_INVALID_PSEUDOHEADER':
      return new InvalidHeaderError(String((error as { header?: string }).header ?? 'unknown'), error.message)
    default:
      return new ProtocolError(`node:http2 refused the request: ${error.message}`, { cause: error, unprocessed: true })
  }
}

/**
 * One attempt of a request as one HTTP/2 stream: writes headers and body,
 * feeds the response to the call, and on the stream's close decides what a
 * failure means (refused, above GOAWAY, lost, reset).
 */
export class Exchange {
  readonly call: Call
  readonly #host: ExchangeHost
  readonly #stream: ClientHttp2Stream
  readonly #session: ClientHttp2Session
  #trailers: ResponseHeaders = {}
  /** The exchange's one timer: headers timeout, then body timeout (see #onTimer). */
  #timer: TimerHandle | undefined
  #timerDue = 0
  /** Set when the outcome was reported (or the caller cancelled): 'close' then has nothing to say. */
  #settled = false
  #responded = false
  #lastData = 0
  /**
   * node:http2 can emit a stream's first DATA (and even its end) before its
   * 'response' event, which it defers with nextTick in some states: hold them.
   */
  #early: Buffer[] | undefined
  #endedEarly = false
  #streamError: Error | undefined

  private constructor(host: ExchangeHost, session: ClientHttp2Session, stream: ClientHttp2Stream, call: Call) {
    this.#host = host
    this.#session = session
    this.#stream = stream
    this.call = call
  }

  /** Opens the stream. Returns undefined when node:http2 refused it (the call was told why). */
  static start(host: ExchangeHost, session: ClientHttp2Session, call: Call): Exchange | undefined {
    const request = call.request
    const headers: OutgoingHttpHeaders = {
      ':method': request.method,
      ':scheme': host.scheme,
      ':authority': request.authority ?? host.authority,
      ':path': request.path,
      ...request.headers,
    }
    const body = request.body
    if (body.length !== undefined && headers['content-length'] === undefined) headers['content-length'] = body.length
    let stream: ClientHttp2Stream
    try {
      stream = session.request(headers, { endStream: body.isEmpty })
    } catch (error) {
      call.fail(requestFailure(error as NodeJS.ErrnoException))
      return undefined
    }
    const exchange = new Exchange(host, session, stream, call)
    exchange.#wire()
    if (!body.isEmpty) {
      body.send(stream).catch((error: Error) => exchange.terminate(error))
    }
    return exchange
  }

  #wire(): void {
    const stream = this.#stream
    const call = this.call
    call.carriedBy(() => this.#cancel())
    call.controller.onResume = () => {
      if (this.#settled) return
      stream.resume()
      this.#armBodyTimer()
    }
    this.#armHeadersTimer()
    stream.on('response', (headers: IncomingHttpHeaders) => this.#onResponse(headers))
    stream.on('trailers', (trailers: IncomingHttpHeaders) => {
      this.#host.received()
      this.#trailers = responseHeaders(trailers)
    })
    stream.on('data', (chunk: Buffer) => this.#onData(chunk))
    stream.on('end', () => this.#onEnd())
    stream.on('error', (error: Error) => {
      this.#streamError = error
    })
    stream.on('close', () => this.#onClose())
  }

  #onResponse(headers: IncomingHttpHeaders): void {
    this.#host.received()
    this.#responded = true
    const status = Number(headers[':status'])
    this.call.responseStarted(status, responseHeaders(headers), '')
    const early = this.#early
    this.#early = undefined
    if (early) for (const chunk of early) this.call.data(chunk)
    this.#afterDelivery()
    if (this.#endedEarly) this.#onEnd()
  }

  #onData(chunk: Buffer): void {
    this.#host.received()
    if (!this.#responded) {
      ;(this.#early ??= []).push(chunk)
      return
    }
    this.call.data(chunk)
    this.#afterDelivery()
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

  #onEnd(): void {
    // node:http2 also ends the readable side of a stream that was torn down
    // (session destroyed, socket lost): only an end on a live stream is END_STREAM.
    if (this.#settled || this.#stream.destroyed) return
    if (!this.#responded) {
      this.#endedEarly = true
      return
    }
    this.#settled = true
    this.#clearTimer()
    this.call.complete(this.#trailers)
  }

  #onClose(): void {
    this.#clearTimer()
    this.#host.released(this)
    // The whole response arrived; only its deferred 'response' event is still to come.
    if (this.#settled || this.#endedEarly) return
    this.#settled = true
    this.call.fail(this.#closeReason())
  }

  /** Why a stream closed before its response ended. */
  #closeReason(): Error {
    const stream = this.#stream
    const code = stream.rstCode ?? NGHTTP2_NO_ERROR
    const lastStreamId = this.#host.goawayLastStreamId
    if (lastStreamId !== undefined && !this.#responded && (stream.id === undefined || stream.id > lastStreamId)) {
      return new ReadOnlyError(
        `The server sent GOAWAY (last-stream-id ${lastStreamId}) before processing stream ${stream.id ?? '(unsent)'}; the request was not processed`,
      )
    }
    // Once a response arrived the server processed the request, whatever it claims afterwards.
    if (code === NGHTTP2_REFUSED_STREAM && !this.#responded) return new RefusedStreamError()
    // node:http2 closes a dying session's streams before it reports the session's own error.
    const lost =
      this.#host.lostError ?? (this.#session.destroyed ? (this.#streamError ?? new Error('the connection closed')) : undefined)
    if (lost) {
      return lost instanceof DrainpipeError && !lost.unprocessed
        ? lost
        : new ConnectionLostError(`The connection was lost with the request in flight: ${lost.message}`, { cause: lost })
    }
    if (code !== NGHTTP2_NO_ERROR) {
      return new ProtocolError(`The server reset the stream with ${codeName(code)}`, {
        http2Code: code,
        cause: this.#streamError,
      })
    }
    return new ProtocolError(
      this.#responded ? 'The stream closed before the response body ended' : 'The stream closed before a response arrived',
      { cause: this.#streamError },
    )
  }

  /** Ends the stream with an error the pool decided (drain deadline, dead connection). */
  terminate(error: Error): void {
    if (this.#cancel()) this.call.fail(error)
  }

  /**
   * Settles the exchange and resets its stream with CANCEL; false when it was
   * already settled. A caller's abort stops here: the call reports its own error.
   */
  #cancel(): boolean {
    if (this.#settled) return false
    this.#settled = true
    this.#clearTimer()
    if (!this.#stream.closed && !this.#stream.destroyed) this.#stream.close(NGHTTP2_CANCEL)
    return true
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
    this.terminate(error)
    this.#host.suspect()
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) {
      this.#host.clock.clearTimeout(this.#timer)
      this.#timer = undefined
    }
  }
}

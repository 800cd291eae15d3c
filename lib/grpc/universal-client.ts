/**
 * Connect's minimal HTTP client (`UniversalClientFn`) over a drainpipe
 * client, for Connect's generic protocol implementations (for example
 * `createTransport` from `@connectrpc/connect/protocol-connect`).
 * `createGrpcTransport` does not use it: it speaks gRPC on drainpipe
 * directly.
 */
import { Code, ConnectError } from '@connectrpc/connect'
import type { UniversalClientFn, UniversalClientRequest, UniversalClientResponse } from '@connectrpc/connect/protocol'
import type { Dispatcher } from 'undici'
import type { Client } from '../client.js'
import { toHeaders } from './metadata.js'
import { abortedBy, toConnectError } from './status.js'

/** Response headers or trailers as dispatch handlers receive them. */
type ResponseFields = Record<string, string | string[] | undefined>

/** Response bytes buffered for a slow reader before the stream is paused (HTTP/2 flow control then holds the server). */
const HIGH_WATER_MARK = 64 * 1024

/**
 * Connect's minimal HTTP client (`UniversalClientFn`) over a drainpipe
 * client, for Connect's other protocols (`@connectrpc/connect/protocol-connect`,
 * `protocol-grpc-web`).
 *
 * Calls the server provably did not process are retried by the client
 * (its `retries`), request messages included while they fit its
 * `retryBufferSize`.
 */
export function createUniversalClient(client: Client): UniversalClientFn {
  return (request) => new UniversalCall(client, request).response
}

/** One call: dispatches it, then feeds the response body and trailers to Connect. */
class UniversalCall {
  readonly response: Promise<UniversalClientResponse>
  readonly #client: Client
  readonly #request: UniversalClientRequest
  #resolve!: (response: UniversalClientResponse) => void
  #reject!: (error: ConnectError) => void
  #attempt: Attempt | undefined
  #settled = false
  readonly #onAbort = () => this.#attempt?.abort(abortedBy(this.#request.signal!))

  constructor(client: Client, request: UniversalClientRequest) {
    this.#client = client
    this.#request = request
    this.response = new Promise((resolve, reject) => {
      this.#resolve = resolve
      this.#reject = reject
    })
    const url = new URL(request.url)
    const headers: Record<string, string> = {}
    request.header.forEach((value, name) => {
      headers[name] = value
    })
    const signal = request.signal
    if (signal?.aborted) {
      this.#fail(abortedBy(signal))
      return
    }
    signal?.addEventListener('abort', this.#onAbort)
    const attempt = new Attempt(this)
    this.#attempt = attempt
    this.#client.dispatch(
      {
        origin: url.origin,
        path: `${url.pathname}${url.search}`,
        method: request.method,
        headers,
        // drainpipe streams async-iterable bodies with HTTP/2 flow control (undici's types only list Readable).
        body: (request.body ?? null) as Dispatcher.DispatchOptions['body'],
        // Deadlines are Connect's (grpc-timeout and the call's signal); a quiet stream is no failure.
        headersTimeout: 0,
        bodyTimeout: 0,
      },
      attempt,
    )
  }

  /** The server has the call: hand Connect the response. */
  started(attempt: Attempt, status: number, headers: ResponseFields): void {
    this.#resolve({ status, header: toHeaders(headers), body: attempt.body, trailer: attempt.trailer })
  }

  /** The call failed before a response (the client already retried what was safe to). */
  failedBeforeResponse(error: Error): void {
    const signal = this.#request.signal
    this.#fail(signal?.aborted ? abortedBy(signal) : toConnectError(error))
  }

  #fail(error: ConnectError): void {
    this.#reject(error)
    this.finish()
  }

  /** The call is over (response ended, failed or abandoned). */
  finish(): void {
    if (this.#settled) return
    this.#settled = true
    this.#request.signal?.removeEventListener('abort', this.#onAbort)
  }

  get signal(): AbortSignal | undefined {
    return this.#request.signal
  }
}

/** One dispatch of a call: an undici controller-style handler that turns the response into Connect's shape. */
class Attempt implements Dispatcher.DispatchHandler {
  readonly trailer = new Headers()
  readonly body: ResponseBody
  readonly #call: UniversalCall
  #controller: Dispatcher.DispatchController | undefined
  #started = false

  constructor(call: UniversalCall) {
    this.#call = call
    this.body = new ResponseBody(this)
  }

  abort(reason: Error): void {
    this.#controller?.abort(reason)
  }

  pause(): void {
    this.#controller?.pause()
  }

  resume(): void {
    this.#controller?.resume()
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: ResponseFields): void {
    this.#started = true
    this.#call.started(this, statusCode, headers)
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.body.push(chunk)
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: ResponseFields): void {
    toHeaders(trailers, this.trailer)
    this.body.end()
    this.#call.finish()
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (!this.#started) {
      this.#call.failedBeforeResponse(error)
      return
    }
    const signal = this.#call.signal
    this.body.fail(signal?.aborted ? abortedBy(signal) : toConnectError(error))
    this.#call.finish()
  }
}

/** The response body as an async iterable; pauses the stream while the reader is behind. */
class ResponseBody implements AsyncIterable<Uint8Array> {
  readonly #attempt: Attempt
  readonly #queue: Buffer[] = []
  #queued = 0
  #paused = false
  #ended = false
  #error: ConnectError | undefined
  #wake: (() => void) | undefined

  constructor(attempt: Attempt) {
    this.#attempt = attempt
  }

  push(chunk: Buffer): void {
    this.#queue.push(chunk)
    this.#queued += chunk.length
    if (this.#queued >= HIGH_WATER_MARK && !this.#paused) {
      this.#paused = true
      this.#attempt.pause()
    }
    this.#notify()
  }

  end(): void {
    this.#ended = true
    this.#notify()
  }

  fail(error: ConnectError): void {
    this.#error ??= error
    this.#notify()
  }

  #notify(): void {
    const wake = this.#wake
    this.#wake = undefined
    wake?.()
  }

  async #next(): Promise<IteratorResult<Uint8Array>> {
    for (;;) {
      const chunk = this.#queue.shift()
      if (chunk !== undefined) {
        this.#queued -= chunk.length
        if (this.#paused && this.#queued < HIGH_WATER_MARK / 2) {
          this.#paused = false
          this.#attempt.resume()
        }
        return { done: false, value: chunk }
      }
      if (this.#error) throw this.#error
      if (this.#ended) return { done: true, value: undefined }
      await new Promise<void>((resolve) => {
        this.#wake = resolve
      })
    }
  }

  /** The reader gave up (or failed downstream): cancel the stream, it must not stay open. */
  #abandon(reason: ConnectError): void {
    if (this.#ended || this.#error) return
    this.#error = reason
    this.#attempt.abort(reason)
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return {
      next: () => this.#next(),
      return: async () => {
        this.#abandon(new ConnectError('the response body was abandoned before it ended', Code.Canceled))
        return { done: true, value: undefined }
      },
      // Connect reports errors downstream (a bad message, readMaxBytes) through throw().
      throw: async (error: unknown) => {
        this.#abandon(ConnectError.from(error, Code.Internal))
        throw error
      },
    }
  }
}

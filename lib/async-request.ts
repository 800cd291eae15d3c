import { EventEmitter } from 'node:events'
import type { Dispatcher } from 'undici'
import { RequestAbortedError } from './errors.js'
import type { Controller, ResponseHeaders } from './handler.js'

/** Status and headers of an {@link AsyncRequest}'s response. */
export interface AsyncResponse {
  /** The HTTP status code. */
  statusCode: number
  /** Response headers, names lowercased. */
  headers: ResponseHeaders
}

/** The events of an {@link AsyncRequest}, in the order they arrive. */
export interface AsyncRequestEvents {
  /** Status and headers. */
  response: [response: AsyncResponse]
  /** A piece of the body. */
  data: [chunk: Buffer]
  /** The response ended; its trailers (empty when none). */
  end: [trailers: ResponseHeaders]
  /** The request failed (never after `end`). */
  error: [error: Error]
}

/**
 * The handle `asyncRequest()` returns at once. Events arrive as they happen:
 * `response`, then `data`…, then `end` (with trailers) or `error`. Never
 * retried: an unprocessed request reports `ReadOnlyError` and the caller
 * decides whether to send it again. `done` settles with the outcome.
 */
export class AsyncRequest extends EventEmitter<AsyncRequestEvents> {
  /** Resolves with the trailers when the response ended; rejects with the error. */
  readonly done: Promise<ResponseHeaders>
  #controller: Controller | undefined
  #cancelled: Error | undefined
  #resolve!: (trailers: ResponseHeaders) => void
  #reject!: (error: Error) => void

  constructor() {
    super()
    this.done = new Promise((resolve, reject) => {
      this.#resolve = resolve
      this.#reject = reject
    })
    // The outcome is always observable through `done` or 'error'; never an unhandled rejection.
    this.done.catch(() => {})
  }

  /** Cancels the request (RST_STREAM CANCEL); the connection stays usable. */
  cancel(reason?: Error): void {
    const error = reason ?? new RequestAbortedError()
    if (this.#controller) this.#controller.abort(error)
    else this.#cancelled = error
  }

  /** Stops reading the body; HTTP/2 flow control then holds the server back. */
  pause(): void {
    this.#controller?.pause()
  }

  /** Reads the body again after `pause()`. */
  resume(): void {
    this.#controller?.resume()
  }

  /** @internal the dispatch handler that feeds this handle. */
  readonly handler: Dispatcher.DispatchHandler = {
    onRequestStart: (controller) => {
      this.#controller = controller as unknown as Controller
      if (this.#cancelled) controller.abort(this.#cancelled)
    },
    onResponseStart: (_controller, statusCode, headers) => {
      this.emit('response', { statusCode, headers: headers as ResponseHeaders })
    },
    onResponseData: (_controller, chunk) => {
      this.emit('data', chunk)
    },
    onResponseEnd: (_controller, trailers) => {
      this.emit('end', trailers as ResponseHeaders)
      this.#resolve(trailers as ResponseHeaders)
    },
    onResponseError: (_controller, error) => {
      if (this.listenerCount('error') > 0) this.emit('error', error)
      this.#reject(error)
    },
  }
}

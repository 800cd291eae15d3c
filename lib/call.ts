import { publish } from './channels.js'
import { DrainpipeError, ReadOnlyError, RefusedStreamError, RequestAbortedError, shown } from './errors.js'
import { Controller, type ResponseHeaders, type Sink } from './handler.js'
import type { PreparedRequest } from './request.js'

/** Whether a failure is safe to send again: the server provably never processed it. */
const isRetryable = (error: unknown): boolean => error instanceof ReadOnlyError || error instanceof RefusedStreamError

/** What a carrier (an exchange, a queue slot) does when the caller aborts. */
export type Cancel = (reason: Error) => void

/**
 * One call of `dispatch()`: a request and the caller's handler across
 * attempts. It routes the request, and when an attempt fails before any
 * response reached the caller with an error that proves the request was not
 * processed, routes it again, up to `retries` times. After the response
 * started, everything goes straight to the caller.
 *
 * The retries are a plain counter, not p-retry: they have no delay (an
 * unprocessed request goes to another connection at once), so there is
 * nothing to schedule, only attempts to count.
 */
export class Call {
  readonly request: PreparedRequest
  readonly controller: Controller
  readonly #sink: Sink
  readonly #route: (call: Call) => void
  readonly #retries: number
  readonly #onRetry: () => void
  #cancel: Cancel | undefined
  #attempt = 1
  #responding = false
  #done = false

  constructor(
    request: PreparedRequest,
    sink: Sink,
    route: (call: Call) => void,
    { retries, onRetry }: { retries: number; onRetry: () => void },
  ) {
    this.request = request
    this.#sink = sink
    this.#route = route
    this.#retries = retries
    this.#onRetry = onRetry
    this.controller = new Controller((reason) => this.#aborted(reason))
  }

  /** Whether the call has reported its outcome (or was aborted): carriers drop it. */
  get done(): boolean {
    return this.#done
  }

  /** Hands the request to the caller's handler, then routes it. */
  start(): void {
    if (!this.#guard(() => this.#sink.start(this.controller))) return
    if (!this.#done) this.#route(this)
  }

  /** The current carrier of the request registers how to cancel it. */
  carriedBy(cancel: Cancel | undefined): void {
    this.#cancel = cancel
  }

  responseStarted(statusCode: number, headers: ResponseHeaders, statusText: string): void {
    if (this.#done) return
    this.#responding = true
    this.request.body.settle()
    this.#guard(() => this.#sink.response(this.controller, statusCode, headers, statusText))
  }

  data(chunk: Buffer): void {
    if (!this.#done) this.#guard(() => this.#sink.data(this.controller, chunk))
  }

  complete(trailers: ResponseHeaders): void {
    if (this.#done) return
    this.#done = true
    this.#cancel = undefined
    this.request.body.close()
    this.#guard(() => this.#sink.complete(this.controller, trailers))
  }

  /** The current attempt failed. Before the response started, unprocessed failures are sent again. */
  fail(error: Error): void {
    if (this.#done) return
    this.#cancel = undefined
    if (this.#mayRetry(error)) this.#retry(error)
    else this.#deliverError(error)
  }

  #mayRetry(error: Error): boolean {
    return (
      !this.#responding && this.#attempt <= this.#retries && isRetryable(error) && this.request.body.replayable && !this.controller.aborted
    )
  }

  #retry(error: Error): void {
    this.#attempt++
    const attempt = this.#attempt
    publish('drainpipe:request:retry', () => ({
      origin: this.request.origin,
      method: this.request.method,
      path: this.request.path,
      attempt,
      reason: (error as DrainpipeError).code ?? error.name,
      error,
    }))
    this.#onRetry()
    // Not from inside the failing carrier's own callback: it finishes first.
    queueMicrotask(() => {
      if (!this.#done) this.#route(this)
    })
  }

  #deliverError(error: Error): void {
    if (this.#done) return
    this.#done = true
    this.request.body.close()
    try {
      this.#sink.error(this.controller, error)
    } catch {
      // A handler that throws from its error callback has nowhere left to report to.
    }
  }

  #aborted(reason: Error | null): void {
    if (this.#done) return
    const error = reason ?? new RequestAbortedError()
    const cancel = this.#cancel
    this.#cancel = undefined
    cancel?.(error)
    this.fail(error)
  }

  /** Runs a handler callback; a throwing handler aborts its own request, never the connection. */
  #guard(callback: () => void): boolean {
    try {
      callback()
      return true
    } catch (error) {
      this.controller.abort(error instanceof Error ? error : new DrainpipeError(shown(error), 'DRAINPIPE_HANDLER'))
      return false
    }
  }
}

import type { Dispatcher } from 'undici'
import { rawHeaders } from './headers.js'

/** Response headers or trailers: names lowercased, repeated fields as arrays (`set-cookie`). */
export type ResponseHeaders = Record<string, string | string[]>

/**
 * Flow control between one request and its caller, in the shape of undici's
 * `DispatchController`: the caller pauses and resumes the body, or aborts.
 */
export class Controller {
  paused = false
  aborted = false
  reason: Error | null = null
  /** Set by the exchange that currently carries the request. */
  onResume: (() => void) | undefined
  readonly #onAbort: (reason: Error | null) => void

  constructor(onAbort: (reason: Error | null) => void) {
    this.#onAbort = onAbort
  }

  pause(): void {
    this.paused = true
  }

  resume(): void {
    if (!this.paused) return
    this.paused = false
    this.onResume?.()
  }

  abort(reason?: Error): void {
    if (this.aborted) return
    this.aborted = true
    this.reason = reason ?? null
    this.#onAbort(this.reason)
  }
}

/**
 * The one interface the engine drives; adapters below map both handler
 * styles undici 7 uses onto it.
 */
export interface Sink {
  start(controller: Controller): void
  response(controller: Controller, statusCode: number, headers: ResponseHeaders, statusText: string): void
  data(controller: Controller, chunk: Buffer): void
  complete(controller: Controller, trailers: ResponseHeaders): void
  error(controller: Controller, error: Error): void
}

type LegacyHandler = Dispatcher.DispatchHandler & {
  onConnect?: (abort: (err?: Error) => void, context?: object) => void
  onResponseStarted?: () => void
  onHeaders?: (statusCode: number, headers: Buffer[], resume: () => void, statusText: string) => boolean | void
  onData?: (chunk: Buffer) => boolean | void
  onComplete?: (trailers: Buffer[] | null) => void
  onError?: (err: Error) => void
}

type ModernHandler = Dispatcher.DispatchHandler & {
  onRequestStart: (controller: Controller, context: object) => void
  onResponseStart?: (controller: Controller, statusCode: number, headers: ResponseHeaders, statusMessage?: string) => void
  onResponseData?: (controller: Controller, chunk: Buffer) => void
  onResponseEnd?: (controller: Controller, trailers: ResponseHeaders) => void
  onResponseError?: (controller: Controller, error: Error) => void
}

const context = {}

class ModernSink implements Sink {
  constructor(readonly handler: ModernHandler) {}
  start(controller: Controller) {
    this.handler.onRequestStart(controller, context)
  }
  response(controller: Controller, statusCode: number, headers: ResponseHeaders, statusText: string) {
    this.handler.onResponseStart?.(controller, statusCode, headers, statusText)
  }
  data(controller: Controller, chunk: Buffer) {
    this.handler.onResponseData?.(controller, chunk)
  }
  complete(controller: Controller, trailers: ResponseHeaders) {
    this.handler.onResponseEnd?.(controller, trailers)
  }
  error(controller: Controller, error: Error) {
    this.handler.onResponseError?.(controller, error)
  }
}

class LegacySink implements Sink {
  constructor(readonly handler: LegacyHandler) {}
  start(controller: Controller) {
    this.handler.onConnect?.((reason) => controller.abort(reason), context)
  }
  response(controller: Controller, statusCode: number, headers: ResponseHeaders, statusText: string) {
    this.handler.onResponseStarted?.()
    const resume = () => controller.resume()
    if (this.handler.onHeaders?.(statusCode, rawHeaders(headers), resume, statusText) === false) controller.pause()
  }
  data(controller: Controller, chunk: Buffer) {
    if (this.handler.onData?.(chunk) === false) controller.pause()
  }
  complete(_controller: Controller, trailers: ResponseHeaders) {
    this.handler.onComplete?.(rawHeaders(trailers))
  }
  error(_controller: Controller, error: Error) {
    this.handler.onError?.(error)
  }
}

/** Accepts either handler style (`onRequestStart…` or `onConnect/onHeaders…`). */
export function toSink(handler: Dispatcher.DispatchHandler): Sink {
  return typeof (handler as ModernHandler).onRequestStart === 'function'
    ? new ModernSink(handler as ModernHandler)
    : new LegacySink(handler as LegacyHandler)
}

import { Readable } from 'node:stream'
import { Pool as UndiciPool, type Dispatcher } from 'undici'
import { fromUndici } from './errors.js'
import type { ResponseHeaders } from './handler.js'
import type { ResolvedOptions } from './options.js'
import type { Call } from './request.js'

/**
 * Origins that speak only HTTP/1.1 (an `https://` server that negotiates
 * `http/1.1`, or an `http://` origin without `h2c`) are served by an undici
 * `Pool` with the same age limit (`clientTtl` from `maxConnectionAge`), so a
 * drop-in `fetch` never breaks on an HTTP/1.1 server.
 */
export class Http1Fallback {
  readonly #pool: UndiciPool
  readonly #authority: string

  constructor(origin: string, options: ResolvedOptions) {
    const { lookup } = options
    this.#authority = new URL(origin).host
    this.#pool = new UndiciPool(origin, {
      clientTtl: options.maxConnectionAge > 0 ? options.maxConnectionAge : null,
      headersTimeout: options.headersTimeout,
      bodyTimeout: options.bodyTimeout,
      connectTimeout: options.connectTimeout,
      connect: {
        ...options.connect,
        // net and tls ask for one address or all of them; our lookup always answers with all.
        lookup: ((hostname: string, lookupOptions: { all?: boolean }, callback: (...args: unknown[]) => void) =>
          lookup(hostname, { all: true }, (error, answer, answerFamily) => {
            const addresses = typeof answer === 'string' ? [{ address: answer, family: answerFamily ?? 4 }] : (answer ?? [])
            if (lookupOptions.all) callback(error, addresses)
            else callback(error, addresses[0]?.address, addresses[0]?.family)
          })) as never,
      },
    })
  }

  /** Sends the call over HTTP/1.1, feeding the response back to it. */
  run(call: Call): void {
    const { request } = call
    const headers: Record<string, string | string[]> = { ...(request.headers as Record<string, string | string[]>) }
    headers.host = request.authority ?? this.#authority
    const body = request.body.forDispatch()
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart: (controller) => {
        call.carriedBy((reason) => controller.abort(reason))
        call.controller.onResume = () => controller.resume()
      },
      onResponseStart: (controller, statusCode, responseHeaders, statusMessage) => {
        if (statusCode < 200) return
        call.responseStarted(statusCode, responseHeaders as ResponseHeaders, statusMessage ?? '')
        if (call.controller.paused) controller.pause()
      },
      onResponseData: (controller, chunk) => {
        call.data(chunk)
        if (call.controller.paused) controller.pause()
      },
      onResponseEnd: (_controller, trailers) => call.complete(trailers as ResponseHeaders),
      onResponseError: (_controller, error) => call.fail(fromUndici(error) as Error),
    }
    this.#pool.dispatch(
      {
        path: request.path,
        method: request.method as Dispatcher.HttpMethod,
        headers,
        body: body === null || Buffer.isBuffer(body) ? body : Readable.from(body),
        headersTimeout: request.headersTimeout,
        bodyTimeout: request.bodyTimeout,
      },
      handler,
    )
  }

  close(): Promise<void> {
    return this.#pool.close()
  }

  destroy(error: Error | null): Promise<void> {
    return this.#pool.destroy(error)
  }
}

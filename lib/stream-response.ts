import type { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'

/** What `client.stream(url, opts)` resolves with, as soon as the response headers arrive. */
export interface StreamResponse {
  /** The HTTP status code. */
  statusCode: number
  /** Response headers, names lowercased. */
  headers: Record<string, string | string[] | undefined>
  /** The body as it arrives; async iterable. */
  body: Readable & AsyncIterable<Buffer>
  /** Resolves with the trailers once the body has been read to the end. */
  trailers: Promise<Record<string, string>>
}

/** Status and headers now, trailers once the body ended. */
export async function streamResponse(pending: Promise<Dispatcher.ResponseData>): Promise<StreamResponse> {
  const response = await pending
  const body = response.body as unknown as Readable & AsyncIterable<Buffer>
  const trailers = new Promise<Record<string, string>>((resolve, reject) => {
    body.once('end', () => resolve(response.trailers))
    body.once('error', reject)
  })
  // Unobserved trailers must not turn a body error into an unhandled rejection.
  trailers.catch(() => {})
  return { statusCode: response.statusCode, headers: response.headers, body, trailers }
}

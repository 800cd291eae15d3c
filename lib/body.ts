import { Readable } from 'node:stream'
import type { ClientHttp2Stream } from 'node:http2'
import { InvalidArgumentError, RequestBodyError } from './errors.js'

/** Request bodies drainpipe accepts (those of undici.request and undici.fetch). */
export type BodyInput =
  | string
  | Uint8Array
  | ArrayBuffer
  | Readable
  | AsyncIterable<Uint8Array | string>
  | ReadableStream<Uint8Array>
  | Blob
  | FormData
  | URLSearchParams
  | null
  | undefined

/**
 * A request body ready to send. Fixed bodies (`bytes`) can be sent any number
 * of times; a streamed body only until its first chunk has been pulled, which
 * decides whether an unprocessed request may be retried.
 */
export class RequestBody {
  readonly bytes: Buffer | undefined
  readonly length: number | undefined
  readonly contentType: string | undefined
  readonly #source: AsyncIterable<Uint8Array | string> | undefined
  #pulled = false

  private constructor(
    bytes: Buffer | undefined,
    source: AsyncIterable<Uint8Array | string> | undefined,
    contentType?: string,
  ) {
    this.bytes = bytes
    this.#source = source
    this.length = bytes?.length
    this.contentType = contentType
  }

  static readonly empty = new RequestBody(undefined, undefined)

  static from(input: BodyInput): RequestBody {
    if (input === null || input === undefined) return RequestBody.empty
    if (typeof input === 'string') return new RequestBody(Buffer.from(input), undefined)
    if (Buffer.isBuffer(input)) return new RequestBody(input, undefined)
    if (input instanceof Uint8Array) return new RequestBody(Buffer.from(input.buffer, input.byteOffset, input.byteLength), undefined)
    if (input instanceof ArrayBuffer) return new RequestBody(Buffer.from(input), undefined)
    if (input instanceof Blob || input instanceof FormData || input instanceof URLSearchParams) {
      // The WHATWG Response encodes these (multipart boundary, charset) exactly as fetch would.
      const encoded = new Response(input)
      const contentType = encoded.headers.get('content-type') ?? undefined
      return new RequestBody(undefined, encoded.body as unknown as AsyncIterable<Uint8Array>, contentType)
    }
    if (typeof (input as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') {
      return new RequestBody(undefined, input as AsyncIterable<Uint8Array | string>)
    }
    if (typeof (input as ReadableStream).getReader === 'function') {
      return new RequestBody(undefined, Readable.fromWeb(input as import('node:stream/web').ReadableStream))
    }
    throw new InvalidArgumentError(
      `Unsupported request body type: ${Object.prototype.toString.call(input)} (use a string, Uint8Array, Readable, async iterable, ReadableStream, Blob or FormData)`,
    )
  }

  get isEmpty(): boolean {
    return this.bytes === undefined && this.#source === undefined
  }

  /** Whether sending it again would send the same bytes. */
  get replayable(): boolean {
    return this.#source === undefined || !this.#pulled
  }

  /** The body for another dispatcher (the HTTP/1.1 fallback), which then owns a streamed source. */
  forDispatch(): Buffer | AsyncIterable<Uint8Array | string> | null {
    if (this.bytes !== undefined) return this.bytes
    if (this.#source === undefined) return null
    this.#pulled = true
    return this.#source
  }

  /**
   * Writes the body to the stream, respecting HTTP/2 flow control (waits for
   * 'drain'), and ends the stream. Resolves when done; rejects with a
   * `RequestBodyError` when the source fails.
   */
  async send(stream: ClientHttp2Stream): Promise<void> {
    if (this.bytes !== undefined) {
      stream.end(this.bytes)
      return
    }
    if (this.#source === undefined) {
      stream.end()
      return
    }
    this.#pulled = true
    try {
      for await (const chunk of this.#source) {
        if (stream.destroyed) return
        if (!stream.write(chunk)) await drained(stream)
      }
    } catch (error) {
      if (stream.destroyed) return
      throw new RequestBodyError(`The request body failed: ${(error as Error)?.message ?? error}`, { cause: error })
    }
    if (!stream.destroyed) stream.end()
  }
}

function drained(stream: ClientHttp2Stream): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done)
      stream.off('close', done)
      resolve()
    }
    stream.on('drain', done)
    stream.on('close', done)
  })
}

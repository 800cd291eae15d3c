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

type Chunk = Uint8Array | string

const toBuffer = (chunk: Chunk): Buffer =>
  typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)

/**
 * A request body ready to send, any number of times while that is safe.
 *
 * Fixed bodies (`bytes`) are replayed as they are. A streamed source is
 * pulled once; what was pulled is kept on a tape, up to `replayLimit` bytes,
 * so an attempt that failed unprocessed after it had started sending (a
 * GOAWAY race, REFUSED_STREAM) can be sent again from the first byte. Past
 * the limit, or once the response started, nothing more is kept and the body
 * can no longer be replayed.
 */
export class RequestBody {
  readonly bytes: Buffer | undefined
  readonly length: number | undefined
  readonly contentType: string | undefined
  readonly #input: AsyncIterable<Chunk> | undefined
  readonly #replayLimit: number
  #source: AsyncIterator<Chunk> | undefined
  readonly #tape: Buffer[] = []
  #tapeBytes = 0
  #recording = true
  #replayable = true
  #finished = false
  #reading: Promise<Buffer | undefined> | undefined
  /** Each attempt reads the body anew; readers of earlier attempts stop. */
  #generation = 0

  private constructor(bytes: Buffer | undefined, input: AsyncIterable<Chunk> | undefined, replayLimit: number, contentType?: string) {
    this.bytes = bytes
    this.#input = input
    this.#replayLimit = replayLimit
    this.length = bytes?.length
    this.contentType = contentType
  }

  static readonly empty = new RequestBody(undefined, undefined, 0)

  static from(input: BodyInput, replayLimit = 0): RequestBody {
    if (input === null || input === undefined) return RequestBody.empty
    if (typeof input === 'string') return new RequestBody(Buffer.from(input), undefined, 0)
    if (Buffer.isBuffer(input)) return new RequestBody(input, undefined, 0)
    if (input instanceof Uint8Array) return new RequestBody(toBuffer(input), undefined, 0)
    if (input instanceof ArrayBuffer) return new RequestBody(Buffer.from(input), undefined, 0)
    if (input instanceof Blob || input instanceof FormData || input instanceof URLSearchParams) {
      // The WHATWG Response encodes these (multipart boundary, charset) exactly as fetch would.
      const encoded = new Response(input)
      const contentType = encoded.headers.get('content-type') ?? undefined
      return new RequestBody(undefined, encoded.body as unknown as AsyncIterable<Uint8Array>, replayLimit, contentType)
    }
    if (typeof (input as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') {
      return new RequestBody(undefined, input as AsyncIterable<Chunk>, replayLimit)
    }
    if (typeof (input as ReadableStream).getReader === 'function') {
      return new RequestBody(undefined, Readable.fromWeb(input as import('node:stream/web').ReadableStream), replayLimit)
    }
    throw new InvalidArgumentError(
      `Unsupported request body type: ${Object.prototype.toString.call(input)} (use a string, Uint8Array, Readable, async iterable, ReadableStream, Blob or FormData)`,
    )
  }

  get isEmpty(): boolean {
    return this.bytes === undefined && this.#input === undefined
  }

  /** Whether sending it again would send the same bytes. */
  get replayable(): boolean {
    return this.#input === undefined || this.#replayable
  }

  /** The response started: no attempt will follow, so stop keeping what is pulled. */
  settle(): void {
    this.#recording = false
    this.#replayable = false
  }

  /** The call is over: release a source that was not read to its end (destroys a Readable). */
  close(): void {
    this.settle()
    this.#tape.length = 0
    this.#generation++
    if (this.#finished || this.#source === undefined) return
    this.#finished = true
    this.#source.return?.()?.catch(() => {})
  }

  /** The body for another dispatcher (the HTTP/1.1 fallback). */
  forDispatch(): Buffer | AsyncIterable<Buffer> | null {
    if (this.bytes !== undefined) return this.bytes
    return this.#input === undefined ? null : this.#chunks()
  }

  /**
   * Writes the body to the stream, respecting HTTP/2 flow control (waits for
   * 'drain'), and ends the stream. Rejects with a `RequestBodyError` when
   * the source fails.
   */
  async send(stream: ClientHttp2Stream): Promise<void> {
    if (this.bytes !== undefined) {
      stream.end(this.bytes)
      return
    }
    try {
      for await (const chunk of this.#chunks()) {
        if (stream.destroyed) return
        if (!stream.write(chunk)) await drained(stream)
      }
    } catch (error) {
      if (stream.destroyed) return
      throw new RequestBodyError(`The request body failed: ${(error as Error)?.message ?? error}`, { cause: error })
    }
    if (!stream.destroyed) stream.end()
  }

  /** The body from its first byte: the tape, then the rest of the source. */
  async *#chunks(): AsyncGenerator<Buffer> {
    const generation = ++this.#generation
    let index = 0
    for (;;) {
      if (generation !== this.#generation) return
      if (index < this.#tape.length) {
        yield this.#tape[index++]!
        continue
      }
      if (this.#finished) return
      const recordedBefore = this.#tape.length
      const chunk = await this.#pull()
      if (generation !== this.#generation || chunk === undefined) return
      // A recorded chunk sits at the end of the tape, where this reader stood.
      if (this.#tape.length > recordedBefore) index++
      yield chunk
    }
  }

  /** One pull from the source at a time, shared by whoever waits for it. */
  #pull(): Promise<Buffer | undefined> {
    this.#source ??= this.#input![Symbol.asyncIterator]()
    this.#reading ??= this.#source.next().then(
      (result) => {
        this.#reading = undefined
        if (result.done) {
          this.#finished = true
          return undefined
        }
        const chunk = toBuffer(result.value)
        if (this.#recording && this.#tapeBytes + chunk.length <= this.#replayLimit) {
          this.#tape.push(chunk)
          this.#tapeBytes += chunk.length
        } else if (this.#recording) {
          // Past the replay limit: this body can no longer be sent again.
          this.#recording = false
          this.#replayable = false
        }
        return chunk
      },
      (error: unknown) => {
        this.#reading = undefined
        this.#finished = true
        throw error
      },
    )
    return this.#reading
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

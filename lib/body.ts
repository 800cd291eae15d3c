import { Readable } from 'node:stream'
import { InvalidArgumentError, RequestBodyError } from './errors.js'
import { encodeMultipart } from './multipart.js'

/** Request bodies drainpipe accepts (those of undici.request and undici.fetch). */
export type BodyInput =
  | string
  | ArrayBufferView
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

/** Where a request body is written: a stream of the engine, with its backpressure. */
export interface BodySink {
  /** False when the caller should wait for `writable()`. */
  write(chunk: Buffer): boolean
  end(): void
  writable(): Promise<void>
  /** The attempt is over (answered, failed, cancelled): stop writing. */
  closed(): boolean
}

/** A FormData of any undici copy (Node's global one, or the npm package's). */
function isFormData(input: object): input is FormData {
  return input instanceof FormData || Object.prototype.toString.call(input) === '[object FormData]'
}

const toBuffer = (chunk: Chunk): Buffer =>
  typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)

/**
 * A request body ready to send, any number of times while that is safe.
 *
 * Fixed bodies (`bytes`) are replayed as they are. Blob and FormData bodies
 * have a known length and are read afresh for each attempt. A streamed
 * source is pulled once; what was pulled is kept on a tape, up to
 * `replayLimit` bytes, so an attempt that failed unprocessed after it had
 * started sending (a GOAWAY race, REFUSED_STREAM) can be sent again from the
 * first byte. Past the limit, or once the response started, nothing more is
 * kept and the body can no longer be replayed.
 */
export class RequestBody {
  readonly bytes: Buffer | undefined
  readonly length: number | undefined
  readonly contentType: string | undefined
  /** A source that can be read again from its start, any number of times (Blob, FormData). */
  readonly #reread: (() => AsyncIterable<Chunk>) | undefined
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

  private constructor(
    fixed: { bytes?: Buffer; length?: number; contentType?: string; reread?: () => AsyncIterable<Chunk> },
    input?: AsyncIterable<Chunk>,
    replayLimit = 0,
  ) {
    this.bytes = fixed.bytes
    this.length = fixed.bytes?.length ?? fixed.length
    this.contentType = fixed.contentType
    this.#reread = fixed.reread
    this.#input = input
    this.#replayLimit = replayLimit
  }

  static readonly empty = new RequestBody({})

  static from(input: BodyInput, replayLimit = 0): RequestBody {
    if (input === null || input === undefined) return RequestBody.empty
    if (typeof input === 'string') return new RequestBody({ bytes: Buffer.from(input) })
    if (Buffer.isBuffer(input)) return new RequestBody({ bytes: input })
    // Any view of bytes (Uint8Array, other typed arrays, DataView), as fetch accepts them.
    if (ArrayBuffer.isView(input)) return new RequestBody({ bytes: Buffer.from(input.buffer, input.byteOffset, input.byteLength) })
    if (input instanceof ArrayBuffer) return new RequestBody({ bytes: Buffer.from(input) })
    if (input instanceof URLSearchParams) {
      return new RequestBody({ bytes: Buffer.from(input.toString()), contentType: 'application/x-www-form-urlencoded;charset=UTF-8' })
    }
    if (input instanceof Blob) {
      const reread = () => input.stream() as unknown as AsyncIterable<Uint8Array>
      return new RequestBody({ length: input.size, contentType: input.type || undefined, reread })
    }
    if (isFormData(input)) {
      const form = encodeMultipart(input)
      return new RequestBody({ length: form.length, contentType: form.contentType, reread: () => form.chunks() })
    }
    if (typeof (input as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') {
      return new RequestBody({}, input as AsyncIterable<Chunk>, replayLimit)
    }
    if (typeof (input as ReadableStream).getReader === 'function') {
      return new RequestBody({}, Readable.fromWeb(input as import('node:stream/web').ReadableStream), replayLimit)
    }
    throw new InvalidArgumentError(
      `Unsupported request body type: ${Object.prototype.toString.call(input)} (use a string, Uint8Array, Readable, async iterable, ReadableStream, Blob, FormData or URLSearchParams)`,
    )
  }

  get isEmpty(): boolean {
    return this.bytes === undefined && this.#reread === undefined && this.#input === undefined
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
    return this.isEmpty ? null : this.#chunks()
  }

  /**
   * Writes the body, waiting whenever the sink is full, and ends it.
   * Rejects with a `RequestBodyError` when the source fails.
   */
  async send(sink: BodySink): Promise<void> {
    if (this.bytes !== undefined) {
      sink.write(this.bytes)
      sink.end()
      return
    }
    try {
      for await (const chunk of this.#chunks()) {
        if (sink.closed()) return
        if (!sink.write(chunk)) await sink.writable()
      }
    } catch (error) {
      if (sink.closed()) return
      throw new RequestBodyError(`The request body failed: ${(error as Error)?.message ?? error}`, { cause: error })
    }
    if (!sink.closed()) sink.end()
  }

  /** The body from its first byte. */
  async *#chunks(): AsyncGenerator<Buffer> {
    if (this.#reread !== undefined) {
      for await (const chunk of this.#reread()) yield toBuffer(chunk)
      return
    }
    // A one-shot source: the tape, then the rest of the source.
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

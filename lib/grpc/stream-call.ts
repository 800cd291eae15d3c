/**
 * A streaming gRPC call (server, client and bidi): the call is the iterable
 * of response messages, parsed as they are read, and a slow reader pauses
 * the stream, so HTTP/2 flow control holds the server back.
 */
import type { DescMethodStreaming } from '@bufbuild/protobuf'
import { Code, ConnectError, type StreamResponse } from '@connectrpc/connect'
import { CallResult, GrpcCall, type Message } from './call.js'
import type { MethodPlan, TransportSettings } from './request.js'
import { toConnectError } from './status.js'

/** Response bytes queued for a slow reader before the stream is paused (HTTP/2 flow control then holds the server). */
const HIGH_WATER_MARK = 64 * 1024

const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined })

/**
 * A streaming call: its promise settles with the response headers; the call
 * itself is the iterable of response messages (one reader; Connect's client
 * streaming reads its one answer from it too). Messages the reader has not
 * asked for yet are queued raw and parsed when read.
 */
export class StreamCall extends GrpcCall implements AsyncIterable<Message>, AsyncIterator<Message> {
  readonly response: Promise<StreamResponse>
  #resolve!: (response: StreamResponse) => void
  #reject!: (error: ConnectError) => void
  #started = false
  readonly #messages: Buffer[] = []
  readonly #compressed: boolean[] = []
  #head = 0
  #queued = 0
  #paused = false
  /** undefined until the response ended; then null (OK) or the status error. */
  #status: ConnectError | null | undefined
  #failure: ConnectError | undefined
  /** The reader returned the iterator: there is nothing more to read. */
  #returned = false
  #waiter: { resolve: (result: IteratorResult<Message> | Promise<IteratorResult<Message>>) => void; reject: (error: ConnectError) => void } | undefined

  constructor(settings: TransportSettings, plan: MethodPlan) {
    super(settings, plan)
    this.response = new Promise((resolve, reject) => {
      this.#resolve = resolve
      this.#reject = reject
    })
  }

  protected responded(trailersOnly: boolean): void {
    // A trailers-only response settles when it ends: a status error then fails the call itself.
    if (!trailersOnly) this.#start()
  }

  #start(): void {
    this.#started = true
    this.#resolve(new StreamResult(this))
  }

  received(message: Buffer, compressed: boolean): void {
    const waiter = this.#waiter
    if (waiter !== undefined && this.#head === this.#messages.length) {
      this.#waiter = undefined
      try {
        waiter.resolve(this.#read(message, compressed))
      } catch (error) {
        waiter.reject(error as ConnectError)
      }
      return
    }
    this.#messages.push(message)
    this.#compressed.push(compressed)
    this.#queued += message.length
    if (this.#queued >= HIGH_WATER_MARK && !this.#paused) {
      this.#paused = true
      this.pause()
    }
  }

  protected ended(status: ConnectError | null): void {
    this.#status = status
    if (!this.#started) {
      if (status === null) this.#start()
      else this.#reject(status)
      return
    }
    this.#wake()
  }

  protected failed(error: ConnectError): void {
    if (!this.#started) {
      this.#reject(error)
      return
    }
    // A failed call delivers nothing more, not even what was already queued (a cancelled reader wants no more).
    this.#discard()
    this.#failure ??= error
    this.#wake()
  }

  /** The response ended or failed: a reader waiting on an empty queue learns how. */
  #wake(): void {
    const waiter = this.#waiter
    if (waiter === undefined || this.#head < this.#messages.length) return
    this.#waiter = undefined
    if (this.#failure !== undefined) waiter.reject(this.#failure)
    else if (this.#status) waiter.reject(this.#status)
    else waiter.resolve(DONE)
  }

  [Symbol.asyncIterator](): AsyncIterator<Message> {
    return this
  }

  next(): Promise<IteratorResult<Message>> {
    if (this.#returned) return Promise.resolve(DONE)
    if (this.#head < this.#messages.length) {
      const message = this.#messages[this.#head]!
      const compressed = this.#compressed[this.#head]!
      this.#head++
      if (this.#head === this.#messages.length) {
        this.#messages.length = 0
        this.#compressed.length = 0
        this.#head = 0
      }
      this.#queued -= message.length
      if (this.#paused && this.#queued < HIGH_WATER_MARK / 2) {
        this.#paused = false
        this.resume()
      }
      try {
        return Promise.resolve(this.#read(message, compressed))
      } catch (error) {
        return Promise.reject(error as ConnectError)
      }
    }
    if (this.#failure !== undefined) return Promise.reject(this.#failure)
    if (this.#status !== undefined) return this.#status === null ? Promise.resolve(DONE) : Promise.reject(this.#status)
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject }
    })
  }

  /** The reader stopped early: the stream must not stay open. */
  return(): Promise<IteratorResult<Message>> {
    this.#returned = true
    this.#discard()
    this.abort(new ConnectError('the response stream was abandoned before it ended', Code.Canceled))
    return Promise.resolve(DONE)
  }

  /** One message for the reader; throws (and ends the call) when it does not decode. */
  #read(message: Buffer, compressed: boolean): IteratorResult<Message> | Promise<IteratorResult<Message>> {
    let value: Message | Promise<Message>
    try {
      value = this.decode(message, compressed)
    } catch (error) {
      throw this.#unreadable(error)
    }
    if (value instanceof Promise) {
      return value.then(
        (parsed) => ({ done: false, value: parsed }),
        (error: unknown) => {
          throw this.#unreadable(error)
        },
      )
    }
    return { done: false, value }
  }

  /** A message did not decode: the call fails with that, and what is still queued is dropped. */
  #unreadable(error: unknown): ConnectError {
    const failure = toConnectError(error)
    this.#discard()
    this.#failure ??= failure
    this.abort(failure)
    return failure
  }

  #discard(): void {
    this.#messages.length = 0
    this.#compressed.length = 0
    this.#head = 0
    this.#queued = 0
  }
}

class StreamResult extends CallResult<DescMethodStreaming> implements StreamResponse {
  readonly stream = true
  readonly message: AsyncIterable<Message>

  constructor(call: StreamCall) {
    super(call)
    this.message = call
  }
}

/**
 * Request messages on their way out: serialised, checked against
 * `writeMaxBytes`, compressed when that pays, framed. A unary or
 * server-streaming request is one fixed buffer (drainpipe replays it
 * whatever its size); a client-streaming or bidi request is an async
 * iterable of framed messages that drainpipe pulls with HTTP/2 flow control
 * and keeps replayable up to the client's `retryBufferSize`.
 */
import { create, type DescMessage, type DescMethod, type MessageShape } from '@bufbuild/protobuf'
import { Code, ConnectError } from '@connectrpc/connect'
import type { Compression } from '@connectrpc/connect/protocol'
import type { Client } from '../client.js'
import { frame } from './framing.js'

/** What every call of one transport shares. */
export interface TransportSettings {
  readonly client: Client
  readonly readMaxBytes: number
  readonly writeMaxBytes: number
  readonly compressMinBytes: number
  readonly sendCompression: Compression | null
  readonly acceptCompression: readonly Compression[]
}

/** What every call of one method shares (made once per method and transport). */
export interface MethodPlan {
  readonly method: DescMethod
  readonly input: DescMessage
  readonly origin: string
  readonly path: string
  /** `origin + path`, as Connect's interceptors see it (`req.url`). */
  readonly url: string
  readonly serialize: (message: MessageShape<DescMessage>) => Uint8Array
  readonly parse: (bytes: Uint8Array) => MessageShape<DescMessage>
}

/** One request message, framed; a promise only when it is compressed. Throws a `ConnectError`. */
export function encodeMessage(settings: TransportSettings, plan: MethodPlan, init: unknown): Buffer | Promise<Buffer> {
  const bytes = plan.serialize(create(plan.input, init as MessageShape<DescMessage>))
  if (bytes.byteLength > settings.writeMaxBytes) {
    throw new ConnectError(
      `sent message larger than max (${bytes.byteLength} vs. ${settings.writeMaxBytes} bytes, writeMaxBytes)`,
      Code.ResourceExhausted,
    )
  }
  const compression = settings.sendCompression
  if (compression === null || bytes.byteLength < settings.compressMinBytes) return frame(bytes, false)
  return compression.compress(bytes).then((compressed) => frame(compressed, true))
}

/** A server-streaming request (one message, but Connect hands it over as an iterable) as one fixed buffer. */
export async function collectMessages(input: AsyncIterable<unknown>, settings: TransportSettings, plan: MethodPlan): Promise<Buffer> {
  const frames: Buffer[] = []
  for await (const message of input) frames.push(await encodeMessage(settings, plan, message))
  return frames.length === 1 ? frames[0]! : Buffer.concat(frames)
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined })

/**
 * The messages of a client-streaming or bidi call as the request body: each
 * pulled from the caller's iterable when drainpipe wants the next chunk.
 * When the call ends first (the server answered, a failure), drainpipe
 * returns this iterator and the caller's iterable is returned too.
 */
export class RequestFrames implements AsyncIterable<Buffer>, AsyncIterator<Buffer> {
  readonly #input: AsyncIterable<unknown>
  readonly #settings: TransportSettings
  readonly #plan: MethodPlan
  #iterator: AsyncIterator<unknown> | undefined

  constructor(input: AsyncIterable<unknown>, settings: TransportSettings, plan: MethodPlan) {
    this.#input = input
    this.#settings = settings
    this.#plan = plan
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    this.#iterator ??= this.#input[Symbol.asyncIterator]()
    return this
  }

  next(): Promise<IteratorResult<Buffer>> {
    return this.#iterator!.next().then((result) => {
      if (result.done === true) return DONE
      const framed = encodeMessage(this.#settings, this.#plan, result.value)
      return framed instanceof Promise ? framed.then((value) => ({ done: false, value })) : { done: false, value: framed }
    })
  }

  async return(): Promise<IteratorResult<Buffer>> {
    await this.#iterator?.return?.()
    return DONE
  }
}

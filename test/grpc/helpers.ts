import { ConnectError } from '@connectrpc/connect'
import type { MessageInitShape } from '@bufbuild/protobuf'
import { expect } from 'vitest'
import type { EchoRequestSchema } from './gen/echo_pb.js'

export type EchoInit = MessageInitShape<typeof EchoRequestSchema>

/** An async iterable the test feeds one message at a time (for bidi and client streaming). */
export function messageQueue<T>() {
  const items: T[] = []
  let ended = false
  let wake: (() => void) | undefined
  const iterable: AsyncIterable<T> = {
    async *[Symbol.asyncIterator]() {
      for (;;) {
        if (items.length > 0) yield items.shift()!
        else if (ended) return
        else await new Promise<void>((resolve) => (wake = resolve))
      }
    },
  }
  const notify = () => {
    const w = wake
    wake = undefined
    w?.()
  }
  return {
    iterable,
    push(item: T) {
      items.push(item)
      notify()
    },
    end() {
      ended = true
      notify()
    },
  }
}

export async function* messages(...requests: EchoInit[]) {
  for (const request of requests) yield request
}

/** The ConnectError a call fails with (the test fails if it succeeds or fails otherwise). */
export async function caught(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise
  } catch (error) {
    expect(error).toBeInstanceOf(ConnectError)
    return error as ConnectError
  }
  throw new Error('expected the call to fail')
}

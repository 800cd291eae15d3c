/** The wait queue of one origin (lib/queue.ts): FIFO, and a deadline for the time no connection is usable. */
import { describe, expect, it } from 'vitest'
import type { Call } from '../../lib/call.js'
import { ConnectTimeoutError } from '../../lib/errors.js'
import { WaitQueue } from '../../lib/queue.js'
import { ManualClock } from '../helpers/manual-clock.js'

interface FakeCall {
  name: string
  error: Error | undefined
  cancel: ((reason: Error) => void) | undefined
}

function call(name: string): FakeCall & Call {
  const fake: FakeCall = { name, error: undefined, cancel: undefined }
  return Object.assign(fake, {
    fail: (error: Error) => (fake.error = error),
    carriedBy: (cancel: (reason: Error) => void) => (fake.cancel = cancel),
  }) as unknown as FakeCall & Call
}

function setup(connectTimeout = 1000) {
  const clock = new ManualClock()
  let left = 0
  const queue = new WaitQueue('https://api.test', clock, connectTimeout, () => left++)
  return { clock, queue, left: () => left }
}

describe('WaitQueue', () => {
  it('first in, first out', () => {
    const { queue } = setup()
    const calls = ['a', 'b', 'c'].map(call)
    for (const c of calls) queue.push(c)
    expect([queue.shift(), queue.shift(), queue.shift(), queue.shift()].map((c) => (c as FakeCall | undefined)?.name)).toEqual(['a', 'b', 'c', undefined])
  })

  it('while no connection is usable, each call waits at most connectTimeout from when it queued', () => {
    const { clock, queue, left } = setup(1000)
    const early = call('early')
    queue.push(early)
    clock.advance(400)
    const late = call('late')
    queue.push(late)
    clock.advance(600)
    expect(early.error).toBeInstanceOf(ConnectTimeoutError)
    expect(early.error!.message).toBe('No usable connection to https://api.test within 1000 ms (connectTimeout)')
    expect(late.error).toBeUndefined()
    clock.advance(400)
    expect(late.error).toBeInstanceOf(ConnectTimeoutError)
    expect(queue.length).toBe(0)
    expect(left()).toBe(2)
  })

  it('once a connection is usable the calls wait for slots without a deadline; when it is lost the deadline runs on with what was left', () => {
    const { clock, queue } = setup(1000)
    const waiting = call('waiting')
    queue.push(waiting)
    queue.connectionUsable(true)
    expect(clock.pending()).toEqual([])
    clock.advance(5000)
    expect(waiting.error).toBeUndefined()
    queue.connectionUsable(false)
    expect(clock.pending()).toEqual([1000])
    clock.advance(1000)
    expect(waiting.error).toBeInstanceOf(ConnectTimeoutError)
  })

  it('the time without a usable connection adds up: connections that come and go do not start it over', () => {
    const { clock, queue } = setup(1000)
    const waiting = call('waiting')
    queue.push(waiting)
    for (let i = 0; i < 3; i++) {
      clock.advance(300)
      queue.connectionUsable(true)
      clock.advance(5000)
      queue.connectionUsable(false)
    }
    expect(clock.pending()).toEqual([100])
    clock.advance(99)
    expect(waiting.error).toBeUndefined()
    clock.advance(1)
    expect(waiting.error).toBeInstanceOf(ConnectTimeoutError)
  })

  it('a call queued while a connection is usable has no deadline', () => {
    const { clock, queue } = setup(1000)
    queue.connectionUsable(true)
    queue.push(call('slot'))
    expect(clock.pending()).toEqual([])
  })

  it('connectTimeout 0: no deadline at all', () => {
    const { clock, queue } = setup(0)
    queue.push(call('patient'))
    expect(clock.pending()).toEqual([])
  })

  it("a caller's abort takes the call out of the queue, with its timer", () => {
    const { clock, queue, left } = setup(1000)
    const aborted = call('aborted')
    queue.push(aborted)
    queue.push(call('other'))
    aborted.cancel!(new Error('aborted'))
    expect(queue.length).toBe(1)
    expect(clock.pending()).toEqual([1000])
    expect(left()).toBe(1)
  })

  it('takeAll() empties the queue in order and stops every deadline', () => {
    const { clock, queue } = setup(1000)
    for (const name of ['a', 'b']) queue.push(call(name))
    expect(queue.takeAll().map((c) => (c as unknown as FakeCall).name)).toEqual(['a', 'b'])
    expect(clock.pending()).toEqual([])
  })
})

/**
 * What one exchange (lib/exchange.ts) tells its address's health when it
 * settles, with a fake stream and no socket: success, server error
 * (status ≥ 500, gRPC UNAVAILABLE in the head or in trailers), failure
 * (reset, lost, timeout, truncated), or nothing (refused, unprocessed,
 * cancelled by the caller or by drainpipe).
 */
import { describe, expect, it } from 'vitest'
import { RequestBody } from '../../lib/body.js'
import type { Call } from '../../lib/call.js'
import { Http2ErrorCode, type Connection, type StreamClosed, type StreamHandler } from '../../lib/engine.js'
import { DrainTimeoutError } from '../../lib/errors.js'
import { Exchange, type ExchangeHost } from '../../lib/exchange.js'
import { Controller } from '../../lib/handler.js'
import { Outcome } from '../../lib/health.js'
import { ManualClock } from '../helpers/manual-clock.js'

function setup() {
  const clock = new ManualClock()
  const released: Outcome[] = []
  const host: ExchangeHost = {
    clock,
    scheme: 'https',
    authority: 'api.test:8443',
    headersTimeout: 1000,
    bodyTimeout: 1000,
    maxHeaderFields: 128,
    answered: () => {},
    suspect: () => {},
    released: (exchange) => released.push(exchange.outcome),
  }
  let handler: StreamHandler | undefined
  const connection = {
    open: (_head: unknown, _end: boolean, streamHandler: StreamHandler) => {
      handler = streamHandler
      return { id: 1, write: () => true, end: () => {}, pause: () => {}, resume: () => {}, reset: () => {} }
    },
  } as unknown as Connection
  let cancel: ((reason: Error) => void) | undefined
  const controller = new Controller((reason) => cancel?.(reason ?? new Error('aborted')))
  const call = {
    request: { origin: 'https://api.test:8443', method: 'GET', path: '/', headers: {}, authority: undefined, body: RequestBody.empty },
    controller,
    carriedBy: (carrier: ((reason: Error) => void) | undefined) => (cancel = carrier),
    responseStarted: () => {},
    data: () => {},
    complete: () => {},
    fail: () => {},
  } as unknown as Call
  const exchange = Exchange.start(host, connection, call)!
  const closed = (why: Partial<StreamClosed>) =>
    handler!.closed({ code: undefined, by: undefined, error: undefined, lost: undefined, unprocessed: false, ...why })
  return { clock, released, exchange, handler: handler!, controller, closed }
}

describe('Exchange: the outcome its address hears of', () => {
  it('a complete response: success; 4xx too (the server answered)', () => {
    for (const status of [200, 404]) {
      const t = setup()
      t.handler.response(status, {})
      t.handler.end({})
      expect(t.released).toEqual([Outcome.Success])
    }
  })

  it('status ≥ 500: a server error, also when the caller stops reading its body', () => {
    const t = setup()
    t.handler.response(503, {})
    t.handler.end({})
    expect(t.released).toEqual([Outcome.ServerError])
    const aborted = setup()
    aborted.handler.response(500, {})
    aborted.controller.abort()
    expect(aborted.released).toEqual([Outcome.ServerError])
  })

  it('gRPC UNAVAILABLE, in a trailers-only head or in trailers: a server error; another grpc-status: a success', () => {
    const head = setup()
    head.handler.response(200, { 'content-type': 'application/grpc', 'grpc-status': '14' })
    head.handler.end({})
    const trailers = setup()
    trailers.handler.response(200, { 'content-type': 'application/grpc' })
    trailers.handler.end({ 'grpc-status': '14' })
    const other = setup()
    other.handler.response(200, { 'content-type': 'application/grpc' })
    other.handler.end({ 'grpc-status': '5' })
    expect([...head.released, ...trailers.released, ...other.released]).toEqual([Outcome.ServerError, Outcome.ServerError, Outcome.Success])
  })

  it('reset by the server, lost with the connection, a body shorter than its content-length: failures', () => {
    const reset = setup()
    reset.closed({ code: Http2ErrorCode.INTERNAL_ERROR, by: 'peer' })
    const lost = setup()
    lost.handler.response(200, {})
    lost.closed({ lost: new Error('socket hang up') })
    const short = setup()
    short.handler.response(200, { 'content-length': '10' })
    short.handler.data(Buffer.from('abc'))
    short.handler.end({})
    expect([...reset.released, ...lost.released, ...short.released]).toEqual([Outcome.Failure, Outcome.Failure, Outcome.Failure])
  })

  it('a headers timeout: a failure', () => {
    const t = setup()
    t.clock.advance(1000)
    expect(t.released).toEqual([Outcome.Failure])
  })

  it('refused, or above a GOAWAY (never processed): nothing to learn', () => {
    const refused = setup()
    refused.closed({ code: Http2ErrorCode.REFUSED_STREAM, by: 'peer' })
    const unprocessed = setup()
    unprocessed.closed({ unprocessed: true })
    expect([...refused.released, ...unprocessed.released]).toEqual([Outcome.None, Outcome.None])
  })

  it('cancelled by the caller, or ended by drainpipe (drain deadline, destroy): nothing to learn', () => {
    const caller = setup()
    caller.controller.abort()
    const drained = setup()
    drained.exchange.terminate(new DrainTimeoutError(30_000))
    expect([...caller.released, ...drained.released]).toEqual([Outcome.None, Outcome.None])
  })
})

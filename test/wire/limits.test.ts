/**
 * The limits of lib/wire/limits.ts against a hostile server: each one holds
 * exactly at its number (the server may go up to it), and going past it is a
 * connection error with a PeerLimitError naming it. The flood windows run on
 * a manual clock, so "within the window" is exact.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Http2ErrorCode } from '../../lib/engine.js'
import { PeerLimitError } from '../../lib/errors.js'
import { Setting } from '../../lib/wire/frame.js'
import {
  MAX_CONTINUATIONS,
  MAX_EMPTY_DATA_IN_A_ROW,
  MAX_FIELD_BLOCK_EXCESS,
  MAX_PINGS_PER_WINDOW,
  MAX_SETTINGS_ENTRIES,
  MAX_SETTINGS_PER_WINDOW,
  MAX_STRAY_FRAMES_PER_WINDOW,
  PING_WINDOW,
  RECENT_RESETS,
  SETTINGS_WINDOW,
} from '../../lib/wire/limits.js'
import { ManualClock } from '../helpers/manual-clock.js'
import { encodeFrame, Flag, frames, FrameType, headerBlock, response } from '../hostile/server.js'
import { connectionError, goesOn, opened, ourReset, peer, type Peer } from './conformance.js'
import { request } from './harness.js'

const cleanup: (() => unknown)[] = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

async function limited(options: Parameters<typeof peer>[1] = {}): Promise<Peer & { clock: ManualClock }> {
  const clock = new ManualClock()
  const p = await peer(cleanup, { ...options, connect: { ...options.connect, clock } })
  return { ...p, clock }
}

/** The connection error a limit causes: ENHANCE_YOUR_CALM (unless given), a PeerLimitError naming `limit`. */
async function exceeded(p: Peer, limit: string, code: number = Http2ErrorCode.ENHANCE_YOUR_CALM): Promise<void> {
  const error = await connectionError(p, code)
  expect(error).toBeInstanceOf(PeerLimitError)
  expect((error as PeerLimitError).limit).toBe(limit)
}

const repeat = (count: number, frame: Buffer) => Buffer.concat(Array.from({ length: count }, () => frame))

describe('SETTINGS floods', () => {
  it(`${MAX_SETTINGS_PER_WINDOW} SETTINGS within ${SETTINGS_WINDOW} ms are answered; one more is MAX_SETTINGS_PER_WINDOW`, async () => {
    const p = await limited()
    // The server's preface was the first.
    p.c.write(repeat(MAX_SETTINGS_PER_WINDOW - 1, frames.settings([[Setting.MAX_CONCURRENT_STREAMS, 50]])))
    await p.log.nextSettings(MAX_SETTINGS_PER_WINDOW - 1)
    await goesOn(p)
    expect(p.c.received.filter((f) => f.type === FrameType.SETTINGS && f.flags & Flag.ACK)).toHaveLength(MAX_SETTINGS_PER_WINDOW)
    p.c.write(frames.settings())
    await exceeded(p, 'MAX_SETTINGS_PER_WINDOW')
    expect(p.connection.counters.settings).toBe(MAX_SETTINGS_PER_WINDOW + 1)
  })

  it('the count starts again in the next window', async () => {
    const p = await limited()
    p.c.write(repeat(MAX_SETTINGS_PER_WINDOW - 1, frames.settings()))
    await p.log.nextSettings(MAX_SETTINGS_PER_WINDOW - 1)
    p.clock.advance(SETTINGS_WINDOW)
    p.c.write(repeat(MAX_SETTINGS_PER_WINDOW, frames.settings()))
    await p.log.nextSettings(2 * MAX_SETTINGS_PER_WINDOW - 1)
    await goesOn(p)
  })

  it(`a SETTINGS frame with ${MAX_SETTINGS_ENTRIES + 1} entries is MAX_SETTINGS_ENTRIES; ${MAX_SETTINGS_ENTRIES} are fine`, async () => {
    const p = await limited()
    const entries = (count: number) => Array.from({ length: count }, (): [number, number] => [Setting.MAX_CONCURRENT_STREAMS, 10])
    p.c.write(frames.settings(entries(MAX_SETTINGS_ENTRIES)))
    await p.log.nextSettings(1)
    p.c.write(frames.settings(entries(MAX_SETTINGS_ENTRIES + 1)))
    await exceeded(p, 'MAX_SETTINGS_ENTRIES')
  })
})

describe('PING floods', () => {
  it(`${MAX_PINGS_PER_WINDOW} PINGs within ${PING_WINDOW} ms are answered; one more is MAX_PINGS_PER_WINDOW`, async () => {
    const p = await limited()
    p.c.write(repeat(MAX_PINGS_PER_WINDOW, frames.ping()))
    // Two round trips: the second request leaves after every ACK.
    await goesOn(p)
    await goesOn(p)
    expect(p.c.received.filter((f) => f.type === FrameType.PING && f.flags & Flag.ACK)).toHaveLength(MAX_PINGS_PER_WINDOW)
    p.c.write(frames.ping())
    await exceeded(p, 'MAX_PINGS_PER_WINDOW')
    expect(p.connection.counters.pings).toBe(MAX_PINGS_PER_WINDOW + 1)
  })

  it('a steady keepalive across windows is never a flood', async () => {
    const p = await limited()
    for (let window = 0; window < 3; window++) {
      p.c.write(repeat(MAX_PINGS_PER_WINDOW / 2, frames.ping()))
      await goesOn(p)
      p.clock.advance(PING_WINDOW)
    }
    expect(p.connection.counters.pings).toBe((3 * MAX_PINGS_PER_WINDOW) / 2)
  })
})

describe('frames that do nothing (MAX_STRAY_FRAMES_PER_WINDOW)', () => {
  async function closedStream() {
    const p = await limited()
    const get = await opened(p)
    p.c.write(response(get.stream.id, 200, 'ok'))
    await get.settled
    return { p, id: get.stream.id }
  }

  it(`RST_STREAM flood on a closed stream: ${MAX_STRAY_FRAMES_PER_WINDOW} are ignored, one more ends the connection`, async () => {
    const { p, id } = await closedStream()
    p.c.write(repeat(MAX_STRAY_FRAMES_PER_WINDOW, frames.rstStream(id, Http2ErrorCode.CANCEL)))
    await goesOn(p)
    expect(p.connection.counters.strayFrames).toBe(MAX_STRAY_FRAMES_PER_WINDOW)
    expect(p.connection.counters.resets).toBe(MAX_STRAY_FRAMES_PER_WINDOW)
    p.c.write(frames.rstStream(id, Http2ErrorCode.CANCEL))
    await exceeded(p, 'MAX_STRAY_FRAMES_PER_WINDOW')
  })

  it('frames of unknown types in a flood end the connection', async () => {
    const { p } = await closedStream()
    p.c.write(repeat(MAX_STRAY_FRAMES_PER_WINDOW + 1, encodeFrame(0xfa, 0, 0, Buffer.from('x'))))
    await exceeded(p, 'MAX_STRAY_FRAMES_PER_WINDOW')
  })

  it('PRIORITY frames in a flood end the connection', async () => {
    const { p, id } = await closedStream()
    p.c.write(repeat(MAX_STRAY_FRAMES_PER_WINDOW + 1, encodeFrame(FrameType.PRIORITY, 0, id, Buffer.alloc(5))))
    await exceeded(p, 'MAX_STRAY_FRAMES_PER_WINDOW')
  })

  it('DATA on a closed stream is answered with STREAM_CLOSED and counted as stray, each time', async () => {
    const { p, id } = await closedStream()
    p.c.write(repeat(3, frames.data(id, 'late')))
    expect(await ourReset(p.c, id)).toBe(Http2ErrorCode.STREAM_CLOSED)
    await goesOn(p)
    expect(p.c.received.filter((f) => f.type === FrameType.RST_STREAM)).toHaveLength(3)
    expect(p.connection.counters.strayFrames).toBe(3)
  })

  it('the window slides: the same trickle spread over windows is tolerated', async () => {
    const { p, id } = await closedStream()
    for (let window = 0; window < 3; window++) {
      p.c.write(repeat(MAX_STRAY_FRAMES_PER_WINDOW, frames.rstStream(id, Http2ErrorCode.CANCEL)))
      await goesOn(p)
      p.clock.advance(10_000)
    }
  })

  it(`frames in flight on the last ${RECENT_RESETS} streams we reset are expected: ignored, not stray`, async () => {
    const p = await limited()
    const streams = Array.from({ length: RECENT_RESETS + 1 }, () => request(p.connection, '/x'))
    await p.c.stream(RECENT_RESETS + 1)
    for (const stream of streams) stream.stream.reset()
    await p.c.frame((f) => f.type === FrameType.RST_STREAM && f.streamId === streams.at(-1)!.stream.id)
    // The oldest reset is forgotten: its late DATA is a frame on a closed stream.
    for (const stream of streams) p.c.write(frames.data(stream.stream.id, 'late'))
    await goesOn(p)
    expect(p.connection.counters.strayFrames).toBe(1)
    const answered = p.c.received.filter((f) => f.type === FrameType.RST_STREAM && f.payload.readUInt32BE(0) === Http2ErrorCode.STREAM_CLOSED)
    expect(answered.map((f) => f.streamId)).toEqual([streams[0]!.stream.id])
  })
})

describe(`empty DATA frames (MAX_EMPTY_DATA_IN_A_ROW = ${MAX_EMPTY_DATA_IN_A_ROW})`, () => {
  it('up to the limit in a row, then content, then up to the limit again: fine', async () => {
    const p = await limited()
    const get = await opened(p)
    const id = get.stream.id
    p.c.write(frames.headers(id, [[':status', '200']]))
    p.c.write(repeat(MAX_EMPTY_DATA_IN_A_ROW, frames.data(id, '')))
    p.c.write(frames.data(id, 'x'))
    p.c.write(repeat(MAX_EMPTY_DATA_IN_A_ROW, frames.data(id, '')))
    p.c.write(frames.data(id, '', true))
    await get.settled
    expect(get.body().toString()).toBe('x')
    expect(p.connection.counters.emptyData).toBe(2 * MAX_EMPTY_DATA_IN_A_ROW)
  })

  it('one past the limit in a row ends the connection', async () => {
    const p = await limited()
    const get = await opened(p)
    p.c.write(frames.headers(get.stream.id, [[':status', '200']]))
    p.c.write(repeat(MAX_EMPTY_DATA_IN_A_ROW + 1, frames.data(get.stream.id, '')))
    await exceeded(p, 'MAX_EMPTY_DATA_IN_A_ROW')
  })

  it('padding-only DATA frames count as empty', async () => {
    const p = await limited()
    const get = await opened(p)
    p.c.write(frames.headers(get.stream.id, [[':status', '200']]))
    p.c.write(repeat(MAX_EMPTY_DATA_IN_A_ROW + 1, encodeFrame(FrameType.DATA, Flag.PADDED, get.stream.id, Buffer.from([2, 0, 0]))))
    await exceeded(p, 'MAX_EMPTY_DATA_IN_A_ROW')
  })
})

describe('field blocks', () => {
  it(`more than ${MAX_CONTINUATIONS} CONTINUATION frames in one block: MAX_CONTINUATIONS`, async () => {
    const p = await limited()
    const get = await opened(p)
    const id = get.stream.id
    p.c.write(encodeFrame(FrameType.HEADERS, 0, id, headerBlock([[':status', '200']])))
    p.c.write(repeat(MAX_CONTINUATIONS + 1, frames.continuation(id, Buffer.alloc(0), false)))
    await exceeded(p, 'MAX_CONTINUATIONS')
  })

  it(`a block more than ${MAX_FIELD_BLOCK_EXCESS} octets past maxHeaderListSize is not decoded: the connection ends`, async () => {
    const p = await limited({ connect: { settings: { maxHeaderListSize: 1000 } } })
    const get = await opened(p)
    const id = get.stream.id
    p.c.write(encodeFrame(FrameType.HEADERS, 0, id, Buffer.alloc(16_000, 0x88)))
    for (let i = 0; i < 4; i++) p.c.write(frames.continuation(id, Buffer.alloc(16_000, 0x88), false))
    await exceeded(p, 'maxHeaderListSize')
  })
})

describe('counters', () => {
  it('count what happened on the connection', async () => {
    const p = await limited()
    const get = await opened(p)
    p.c.write(frames.ping())
    p.c.write(frames.settings())
    p.c.write(frames.windowUpdate(get.stream.id, 0))
    await ourReset(p.c, get.stream.id)
    const reset = await opened(p)
    p.c.write(frames.rstStream(reset.stream.id, Http2ErrorCode.CANCEL))
    await reset.settled
    p.c.write(frames.goaway(2 ** 31 - 1))
    await p.log.nextGoaway()
    expect(p.connection.counters).toMatchObject({ pings: 1, settings: 2, resets: 1, goaways: 1, streamErrors: 1, strayFrames: 0, emptyData: 0 })
    expect(p.connection.framesReceived).toBeGreaterThanOrEqual(6)
  })
})

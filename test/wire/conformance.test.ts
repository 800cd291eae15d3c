/**
 * RFC 9113 (and RFC 7541) conformance of the wire engine as a client,
 * grouped by section as h2spec groups its cases. A raw-frame server sends
 * what the section is about; each case asserts what the RFC requires of the
 * client, as seen on the wire: a connection error (our GOAWAY), a stream
 * error (our RST_STREAM), or the frame ignored.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Http2ErrorCode } from '../../lib/engine.js'
import { ConnectError, ConnectionLostError, InvalidHeaderError, PeerLimitError, ProtocolError, ReadOnlyError } from '../../lib/errors.js'
import { DEFAULT_WINDOW, Setting } from '../../lib/wire/frame.js'
import { SETTINGS_ACK_TIMEOUT } from '../../lib/wire/limits.js'
import { ManualClock } from '../helpers/manual-clock.js'
import {
  encodeFrame,
  Flag,
  frames,
  FrameType,
  headerBlock,
  hpackInteger,
  hpackLiteral,
  response,
  startHostileServer,
} from '../hostile/server.js'
import { connectionError, goesOn, HOST, ignored, opened, ourGoaway, ourReset, peer, streamError } from './conformance.js'
import { connect, pump, request } from './harness.js'

const cleanup: (() => unknown)[] = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

const STATUS_200: [string, string][] = [[':status', '200']]

/** HEADERS of a 200 without END_STREAM. */
const head200 = (id: number, extra: [string, string][] = []) => frames.headers(id, [...STATUS_200, ...extra])

async function withStream(path = '/x', options: Parameters<typeof opened>[2] = {}) {
  const p = await peer(cleanup)
  const get = await opened(p, path, options)
  return { p, get, id: get.stream.id }
}

function settingsEntries(payload: Buffer): Map<number, number> {
  const entries = new Map<number, number>()
  for (let i = 0; i < payload.length; i += 6) entries.set(payload.readUInt16BE(i), payload.readUInt32BE(i + 2))
  return entries
}

describe('§3.4 HTTP/2 connection preface', () => {
  it('we send our SETTINGS first (push off, 100 streams, our windows and limits), then open the connection window', async () => {
    const p = await peer(cleanup, { connect: { settings: { streamWindow: 200_000, connectionWindow: 3_000_000, maxHeaderListSize: 30_000 } } })
    const [settings, windowUpdate] = p.c.received
    expect(settings!.type).toBe(FrameType.SETTINGS)
    expect(settings!.flags).toBe(0)
    expect(settingsEntries(settings!.payload)).toEqual(
      new Map([
        [Setting.ENABLE_PUSH, 0],
        [Setting.MAX_CONCURRENT_STREAMS, 100],
        [Setting.INITIAL_WINDOW_SIZE, 200_000],
        [Setting.MAX_HEADER_LIST_SIZE, 30_000],
        [Setting.HEADER_TABLE_SIZE, 4096],
      ]),
    )
    expect(windowUpdate!.type).toBe(FrameType.WINDOW_UPDATE)
    expect(windowUpdate!.streamId).toBe(0)
    expect(windowUpdate!.payload.readUInt32BE(0)).toBe(3_000_000 - DEFAULT_WINDOW)
  })

  it("we acknowledge the server's SETTINGS", async () => {
    const p = await peer(cleanup, { settings: [[Setting.MAX_CONCURRENT_STREAMS, 10]] })
    await p.c.frame((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) !== 0)
    expect(p.connection.maxConcurrentStreams).toBe(10)
  })

  it('a server whose first frame is not SETTINGS: connect fails with ConnectError caused by a PROTOCOL_ERROR', async () => {
    const server = await startHostileServer({ host: HOST, settings: false, script: (c) => c.write(frames.ping()) })
    cleanup.push(() => server.close())
    const failure = await connect(HOST, server.port).catch((error: unknown) => error)
    expect(failure).toBeInstanceOf(ConnectError)
    expect((failure as ConnectError).cause).toBeInstanceOf(ProtocolError)
    expect(((failure as ConnectError).cause as ProtocolError).http2Code).toBe(Http2ErrorCode.PROTOCOL_ERROR)
    await server.allClosed()
  })

  it('a server that closes before its SETTINGS: ConnectError', async () => {
    const server = await startHostileServer({ host: HOST, settings: false, script: (c) => {
        c.socket.end()
      } })
    cleanup.push(() => server.close())
    await expect(connect(HOST, server.port)).rejects.toBeInstanceOf(ConnectError)
  })

  it('frames right behind the SETTINGS are processed once the owner listens (a GOAWAY in the same write)', async () => {
    const server = await startHostileServer({
      host: HOST,
      settings: false,
      script: (c) => c.write(Buffer.concat([frames.settings(), frames.goaway(0, Http2ErrorCode.NO_ERROR, 'bye')])),
    })
    cleanup.push(() => server.close())
    const { connection, log } = await connect(HOST, server.port)
    cleanup.push(() => connection.destroy())
    const goaway = await log.nextGoaway()
    expect(goaway.debug.toString()).toBe('bye')
  })
})

describe('§4.1 frame format', () => {
  it('a frame of an unknown type is ignored, on stream 0 and on an open stream', async () => {
    const { p, get, id } = await withStream()
    p.c.write(encodeFrame(0xfa, 0, 0, Buffer.from('ext')))
    p.c.write(encodeFrame(0xfb, 0xff, id, Buffer.from('ext')))
    p.c.write(response(id, 200, 'ok'))
    await get.settled
    expect(get.body().toString()).toBe('ok')
    await ignored(p)
  })

  it('undefined flags are ignored', async () => {
    const { p, get, id } = await withStream()
    p.c.write(encodeFrame(FrameType.HEADERS, Flag.END_HEADERS | 0x02 | 0x10, id, headerBlock(STATUS_200)))
    p.c.write(encodeFrame(FrameType.DATA, Flag.END_STREAM | 0x40, id, Buffer.from('ok')))
    await get.settled
    expect(get.body().toString()).toBe('ok')
    await ignored(p)
  })

  it('the reserved bit of a stream id is ignored', async () => {
    const { p, get, id } = await withStream()
    p.c.write(encodeFrame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, (id | 0x80000000) >>> 0, headerBlock(STATUS_200)))
    await get.settled
    expect(get.status).toBe(200)
  })
})

describe('§4.2 frame size', () => {
  it('DATA larger than our SETTINGS_MAX_FRAME_SIZE: connection error FRAME_SIZE_ERROR', async () => {
    const { p, get, id } = await withStream()
    p.c.write(head200(id))
    p.c.write(frames.data(id, Buffer.alloc(16_385)))
    await connectionError(p, Http2ErrorCode.FRAME_SIZE_ERROR)
    await get.settled
    expect(get.closedWith!.lost).toBeInstanceOf(ProtocolError)
  })

  it('HEADERS larger than our SETTINGS_MAX_FRAME_SIZE: connection error FRAME_SIZE_ERROR', async () => {
    const { p, id } = await withStream()
    p.c.write(frames.headers(id, [...STATUS_200, ['x-big', 'a'.repeat(17_000)]]))
    await connectionError(p, Http2ErrorCode.FRAME_SIZE_ERROR)
  })

  it('a DATA frame of exactly 16,384 octets is accepted', async () => {
    const { p, get, id } = await withStream()
    p.c.write(head200(id))
    p.c.write(frames.data(id, Buffer.alloc(16_384, 1), true))
    await get.settled
    expect(get.received).toBe(16_384)
  })
})

describe('§4.3 field section compression (RFC 7541)', () => {
  it('an invalid block (index 0): connection error COMPRESSION_ERROR', async () => {
    const { p, id } = await withStream()
    p.c.write(encodeFrame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, id, Buffer.from([0x80])))
    await connectionError(p, Http2ErrorCode.COMPRESSION_ERROR)
  })

  it('a dynamic table size update above our SETTINGS_HEADER_TABLE_SIZE: COMPRESSION_ERROR', async () => {
    const { p, id } = await withStream()
    p.c.write(encodeFrame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, id, Buffer.concat([hpackInteger(8192, 5, 0x20), Buffer.from([0x88])])))
    await connectionError(p, Http2ErrorCode.COMPRESSION_ERROR)
  })

  it('the dynamic table carries across streams: a field indexed on one response is referenced on the next', async () => {
    const { p, get, id } = await withStream()
    // Literal with incremental indexing, new name (§6.2.1): becomes dynamic index 62.
    const indexed = Buffer.concat([Buffer.from([0x40]), hpackLiteral('x-shared', 'value').subarray(1)])
    p.c.write(encodeFrame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, id, Buffer.concat([Buffer.from([0x88]), indexed])))
    await get.settled
    const second = await opened(p)
    p.c.write(encodeFrame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, second.stream.id, Buffer.from([0x88, 0xbe])))
    await second.settled
    expect(second.headers!['x-shared']).toBe('value')
  })

  it('a block on a stream we reset is still decoded: the table stays in step', async () => {
    const { p, get, id } = await withStream()
    get.stream.reset()
    await ourReset(p.c, id)
    const indexed = Buffer.concat([Buffer.from([0x40]), hpackLiteral('x-after-reset', 'kept').subarray(1)])
    p.c.write(encodeFrame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, id, Buffer.concat([Buffer.from([0x88]), indexed])))
    const second = await opened(p)
    p.c.write(encodeFrame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, second.stream.id, Buffer.from([0x88, 0xbe])))
    await second.settled
    expect(second.headers!['x-after-reset']).toBe('kept')
  })
})

describe('§5.1 stream states', () => {
  describe('idle', () => {
    const frameOnIdle: [string, (id: number) => Buffer][] = [
      ['DATA', (id) => frames.data(id + 2, 'x')],
      ['HEADERS on an even stream', () => frames.headers(2, STATUS_200, { endStream: true })],
      ['HEADERS on an odd stream never opened', (id) => frames.headers(id + 4, STATUS_200, { endStream: true })],
      ['RST_STREAM', (id) => frames.rstStream(id + 2, Http2ErrorCode.CANCEL)],
      ['WINDOW_UPDATE', (id) => frames.windowUpdate(id + 2, 100)],
    ]
    for (const [name, build] of frameOnIdle) {
      it(`${name} on an idle stream: connection error PROTOCOL_ERROR`, async () => {
        const { p, id } = await withStream()
        p.c.write(build(id))
        await connectionError(p, Http2ErrorCode.PROTOCOL_ERROR)
      })
    }

    it('PRIORITY on an idle stream is ignored', async () => {
      const { p, get, id } = await withStream()
      p.c.write(encodeFrame(FrameType.PRIORITY, 0, id + 2, Buffer.alloc(5)))
      p.c.write(response(id, 200, 'ok'))
      await get.settled
      await ignored(p)
    })
  })

  describe('half-closed (remote)', () => {
    it('DATA after END_STREAM while our body is still open: stream error STREAM_CLOSED', async () => {
      const p = await peer(cleanup)
      const post = await opened(p, '/upload', { open: true })
      const id = post.stream.id
      p.c.write(frames.headers(id, STATUS_200, { endStream: true }))
      await post.settled
      expect(post.calls).toEqual(['response', 'end'])
      p.c.write(frames.data(id, 'late'))
      expect(await ourReset(p.c, id)).toBe(Http2ErrorCode.STREAM_CLOSED)
      await goesOn(p)
    })

    it('our body may still be sent after the response ended, and its end leaves the stream closed', async () => {
      const p = await peer(cleanup)
      const post = await opened(p, '/upload', { open: true })
      const id = post.stream.id
      p.c.write(frames.headers(id, STATUS_200, { endStream: true }))
      await post.settled
      expect(p.connection.activeStreams).toBe(1)
      post.stream.write(Buffer.from('rest'))
      post.stream.end()
      const last = await p.c.frame((f) => f.type === FrameType.DATA && f.streamId === id && (f.flags & Flag.END_STREAM) !== 0)
      expect(last.payload.toString()).toBe('rest')
      expect(p.connection.activeStreams).toBe(0)
    })
  })

  describe('closed', () => {
    async function finished() {
      const { p, get, id } = await withStream()
      p.c.write(response(id, 200, 'ok'))
      await get.settled
      return { p, id }
    }

    it('DATA on a stream that ended normally: stream error STREAM_CLOSED, the connection goes on', async () => {
      const { p, id } = await finished()
      p.c.write(frames.data(id, 'late'))
      expect(await ourReset(p.c, id)).toBe(Http2ErrorCode.STREAM_CLOSED)
      await goesOn(p)
    })

    it('HEADERS on a stream that ended normally: stream error STREAM_CLOSED, the block still decoded', async () => {
      const { p, id } = await finished()
      p.c.write(frames.headers(id, STATUS_200, { endStream: true }))
      expect(await ourReset(p.c, id)).toBe(Http2ErrorCode.STREAM_CLOSED)
      await goesOn(p)
    })

    it('WINDOW_UPDATE and RST_STREAM on a stream that ended are ignored', async () => {
      const { p, id } = await finished()
      p.c.write(frames.windowUpdate(id, 100))
      p.c.write(frames.rstStream(id, Http2ErrorCode.NO_ERROR))
      await ignored(p)
    })

    it('after our RST_STREAM, frames the server had in flight are ignored; its DATA is credited to the connection', async () => {
      const p = await peer(cleanup, { connect: { settings: { connectionWindow: DEFAULT_WINDOW } } })
      const get = await opened(p)
      const id = get.stream.id
      p.c.write(head200(id))
      await get.whenResponse()
      get.stream.reset()
      expect(await ourReset(p.c, id)).toBe(Http2ErrorCode.CANCEL)
      const before = get.calls.length
      p.c.write(frames.data(id, Buffer.alloc(16_000)))
      p.c.write(frames.data(id, Buffer.alloc(16_000)))
      p.c.write(frames.data(id, Buffer.alloc(16_000)))
      p.c.write(frames.windowUpdate(id, 10))
      p.c.write(frames.headers(id, [['x-trailer', '1']], { endStream: true }))
      p.c.write(frames.rstStream(id, Http2ErrorCode.CANCEL))
      const credit = await p.c.frame((f) => f.type === FrameType.WINDOW_UPDATE && f.streamId === 0 && f !== p.c.received[1])
      expect(credit.payload.readUInt32BE(0)).toBeGreaterThanOrEqual(32_000)
      await goesOn(p)
      expect(get.calls.length).toBe(before)
      expect(p.c.received.filter((f) => f.type === FrameType.RST_STREAM)).toHaveLength(1)
      expect(p.connection.counters.strayFrames).toBe(0)
    })
  })
})

describe('§5.1.1 stream identifiers', () => {
  it('our streams are odd and increasing', async () => {
    const p = await peer(cleanup)
    const ids = [request(p.connection, '/a'), request(p.connection, '/b'), request(p.connection, '/c')].map((r) => r.stream.id)
    expect(ids).toEqual([1, 3, 5])
    await p.c.stream(3)
    expect(p.c.streams).toEqual([1, 3, 5])
  })

  it('past 2^31-1 no stream can be opened: accepting turns false, open() refuses', async () => {
    const p = await peer(cleanup, { connect: { internals: { firstStreamId: 2 ** 31 - 1 } } })
    const last = await opened(p)
    expect(last.stream.id).toBe(2 ** 31 - 1)
    expect(p.connection.accepting).toBe(false)
    expect(() => request(p.connection, '/more')).toThrow(ReadOnlyError)
    p.c.write(response(last.stream.id, 200, 'last'))
    await last.settled
    expect(last.body().toString()).toBe('last')
  })
})

describe('§5.1.2 stream concurrency', () => {
  it("open() refuses past the server's SETTINGS_MAX_CONCURRENT_STREAMS; a finished stream frees its slot", async () => {
    const p = await peer(cleanup, { settings: [[Setting.MAX_CONCURRENT_STREAMS, 2]] })
    const a = await opened(p)
    await opened(p)
    expect(() => request(p.connection, '/third')).toThrow(ReadOnlyError)
    p.c.write(response(a.stream.id, 200, 'ok'))
    await a.settled
    const third = await opened(p, '/third')
    expect(third.stream.id).toBe(5)
  })

  it('MAX_CONCURRENT_STREAMS 0 then 100 mid-connection: each change is reported', async () => {
    const p = await peer(cleanup)
    p.c.write(frames.settings([[Setting.MAX_CONCURRENT_STREAMS, 0]]))
    await p.log.nextSettings(1)
    expect(p.connection.maxConcurrentStreams).toBe(0)
    expect(() => request(p.connection, '/x')).toThrow(ReadOnlyError)
    p.c.write(frames.settings([[Setting.MAX_CONCURRENT_STREAMS, 100]]))
    await p.log.nextSettings(2)
    expect(p.connection.maxConcurrentStreams).toBe(100)
    await goesOn(p)
  })
})

describe('§5.4.1 connection error handling', () => {
  it('GOAWAY with the code and last-stream-id 0, error() then closed(), open streams lost with the error', async () => {
    const { p, get } = await withStream()
    const unsent = request(p.connection, '/unsent')
    p.c.write(frames.data(0, 'x'))
    const error = await connectionError(p, Http2ErrorCode.PROTOCOL_ERROR)
    await get.settled
    expect(get.closedWith).toMatchObject({ lost: error, unprocessed: false, code: undefined, by: undefined })
    await unsent.settled
    expect(p.log.events).toEqual(['error', 'closed'])
  })

  it('a stream whose HEADERS were queued but not written when the error came is unprocessed', async () => {
    const p = await peer(cleanup)
    // The request is opened inside the same read that ends the connection: its HEADERS never leave.
    let unsent: ReturnType<typeof request> | undefined
    p.log.on('settings', () => {
      unsent = request(p.connection, '/unsent')
    })
    p.c.write(Buffer.concat([frames.settings([[Setting.MAX_CONCURRENT_STREAMS, 50]]), frames.data(0, 'x')]))
    await connectionError(p, Http2ErrorCode.PROTOCOL_ERROR)
    await unsent!.settled
    expect(unsent!.closedWith).toMatchObject({ unprocessed: true })
    expect(p.c.streams).toEqual([])
  })

  it('the GOAWAY debug data names the violation', async () => {
    const { p } = await withStream()
    p.c.write(frames.rstStream(0 as number, Http2ErrorCode.CANCEL))
    const goaway = await ourGoaway(p.c)
    expect(goaway.debug).toMatch(/RST_STREAM frame on stream 0/)
  })
})

describe('§6.1 DATA', () => {
  it('DATA on stream 0: connection error PROTOCOL_ERROR', async () => {
    const { p } = await withStream()
    p.c.write(frames.data(0, 'x'))
    await connectionError(p, Http2ErrorCode.PROTOCOL_ERROR)
  })

  it('padded DATA delivers the content only', async () => {
    const { p, get, id } = await withStream()
    p.c.write(head200(id))
    p.c.write(encodeFrame(FrameType.DATA, Flag.PADDED | Flag.END_STREAM, id, Buffer.concat([Buffer.from([5]), Buffer.from('body'), Buffer.alloc(5)])))
    await get.settled
    expect(get.body().toString()).toBe('body')
  })

  it('padding as long as the payload: connection error PROTOCOL_ERROR', async () => {
    const { p, id } = await withStream()
    p.c.write(head200(id))
    p.c.write(encodeFrame(FrameType.DATA, Flag.PADDED, id, Buffer.from([4, 1, 2, 3])))
    await connectionError(p, Http2ErrorCode.PROTOCOL_ERROR)
  })

  it('DATA before the response head: stream error PROTOCOL_ERROR', async () => {
    const { p, get, id } = await withStream()
    p.c.write(frames.data(id, 'early'))
    await streamError(p, get, Http2ErrorCode.PROTOCOL_ERROR)
  })

  it('an empty DATA frame with END_STREAM ends the response', async () => {
    const { p, get, id } = await withStream()
    p.c.write(head200(id))
    p.c.write(frames.data(id, 'a'))
    p.c.write(frames.data(id, '', true))
    await get.settled
    expect(get.calls).toEqual(['response', 'data', 'end'])
  })
})

describe('§6.2 HEADERS', () => {
  it('HEADERS on stream 0: connection error PROTOCOL_ERROR', async () => {
    const { p } = await withStream()
    p.c.write(frames.headers(0, STATUS_200, { endStream: true }))
    await connectionError(p, Http2ErrorCode.PROTOCOL_ERROR)
  })

  it('HEADERS with padding and priority fields are read past both', async () => {
    const { p, get, id } = await withStream()
    const block = headerBlock([...STATUS_200, ['x-padded', 'yes']])
    p.c.write(encodeFrame(FrameType.HEADERS, Flag.PADDED | Flag.PRIORITY | Flag.END_HEADERS | Flag.END_STREAM, id, Buffer.concat([Buffer.from([3, 0, 0, 0, 0, 15]), block, Buffer.alloc(3)])))
    await get.settled
    expect(get.headers!['x-padded']).toBe('yes')
  })

  it('HEADERS whose padding exceeds the payload: connection error PROTOCOL_ERROR', async () => {
    const { p, id } = await withStream()
    p.c.write(encodeFrame(FrameType.HEADERS, Flag.PADDED | Flag.END_HEADERS, id, Buffer.from([10, 0x88])))
    await connectionError(p, Http2ErrorCode.PROTOCOL_ERROR)
  })
})

describe('§6.3 PRIORITY', () => {
  it('PRIORITY on stream 0: connection error PROTOCOL_ERROR', async () => {
    const { p } = await withStream()
    p.c.write(encodeFrame(FrameType.PRIORITY, 0, 0, Buffer.alloc(5)))
    await connectionError(p, Http2ErrorCode.PROTOCOL_ERROR)
  })

  it('PRIORITY of 4 octets on an open stream: stream error FRAME_SIZE_ERROR', async () => {
    const { p, get, id } = await withStream()
    p.c.write(encodeFrame(FrameType.PRIORITY, 0, id, Buffer.alloc(4)))
    await streamError(p, get, Http2ErrorCode.FRAME_SIZE_ERROR)
  })

  it('PRIORITY on an open stream is ignored', async () => {
    const { p, get, id } = await withStream()
    p.c.write(encodeFrame(FrameType.PRIORITY, 0, id, Buffer.from([0, 0, 0, 0, 200])))
    p.c.write(response(id, 200, 'ok'))
    await get.settled
    await ignored(p)
  })
})

describe('§6.4 RST_STREAM', () => {
  it('RST_STREAM on stream 0: connection error PROTOCOL_ERROR', async () => {
    const { p } = await withStream()
    p.c.write(frames.rstStream(0, Http2ErrorCode.CANCEL))
    await connectionError(p, Http2ErrorCode.PROTOCOL_ERROR)
  })

  it('RST_STREAM of 3 octets: connection error FRAME_SIZE_ERROR', async () => {
    const { p, id } = await withStream()
    p.c.write(encodeFrame(FrameType.RST_STREAM, 0, id, Buffer.alloc(3)))
    await connectionError(p, Http2ErrorCode.FRAME_SIZE_ERROR)
  })

  it('REFUSED_STREAM before any response: closed by the peer, unprocessed', async () => {
    const { p, get, id } = await withStream()
    p.c.write(frames.rstStream(id, Http2ErrorCode.REFUSED_STREAM))
    await get.settled
    expect(get.closedWith).toEqual({ code: Http2ErrorCode.REFUSED_STREAM, by: 'peer', error: undefined, lost: undefined, unprocessed: true })
  })

  it('REFUSED_STREAM after the response head: not unprocessed (the server answered)', async () => {
    const { p, get, id } = await withStream()
    p.c.write(head200(id))
    p.c.write(frames.rstStream(id, Http2ErrorCode.REFUSED_STREAM))
    await get.settled
    expect(get.closedWith).toMatchObject({ code: Http2ErrorCode.REFUSED_STREAM, unprocessed: false })
  })

  it('CANCEL mid-body: closed by the peer with the code, never end()', async () => {
    const { p, get, id } = await withStream()
    p.c.write(head200(id))
    p.c.write(frames.data(id, 'part'))
    p.c.write(frames.rstStream(id, Http2ErrorCode.CANCEL))
    await get.settled
    expect(get.calls).toEqual(['response', 'data', 'closed'])
    expect(get.closedWith).toMatchObject({ code: Http2ErrorCode.CANCEL, by: 'peer' })
  })

  it('NO_ERROR before END_STREAM is no complete response', async () => {
    const { p, get, id } = await withStream()
    p.c.write(head200(id, [['content-length', '4']]))
    p.c.write(frames.data(id, 'body'))
    p.c.write(frames.rstStream(id, Http2ErrorCode.NO_ERROR))
    await get.settled
    expect(get.calls).toEqual(['response', 'data', 'closed'])
    expect(get.closedWith).toMatchObject({ code: Http2ErrorCode.NO_ERROR, by: 'peer' })
  })

  it('NO_ERROR after a complete response while we upload (§8.1): end() stands, our body stops', async () => {
    const p = await peer(cleanup)
    const post = await opened(p, '/upload', { open: true })
    const id = post.stream.id
    p.c.write(frames.headers(id, STATUS_200, { endStream: true }))
    p.c.write(frames.rstStream(id, Http2ErrorCode.NO_ERROR))
    await post.settled
    expect(post.calls).toEqual(['response', 'end'])
    await goesOn(p)
    post.stream.write(Buffer.from('more'))
    post.stream.end()
    await goesOn(p)
    expect(p.c.received.filter((f) => f.type === FrameType.DATA && f.streamId === id)).toEqual([])
    expect(p.connection.activeStreams).toBe(0)
  })
})

describe('§6.5 SETTINGS', () => {
  it('SETTINGS of 5 octets: connection error FRAME_SIZE_ERROR', async () => {
    const { p } = await withStream()
    p.c.write(encodeFrame(FrameType.SETTINGS, 0, 0, Buffer.alloc(5)))
    await connectionError(p, Http2ErrorCode.FRAME_SIZE_ERROR)
  })

  it('a SETTINGS ACK with a payload: connection error FRAME_SIZE_ERROR', async () => {
    const { p } = await withStream()
    p.c.write(encodeFrame(FrameType.SETTINGS, Flag.ACK, 0, Buffer.alloc(6)))
    await connectionError(p, Http2ErrorCode.FRAME_SIZE_ERROR)
  })

  it('SETTINGS on stream 1: connection error PROTOCOL_ERROR', async () => {
    const { p } = await withStream()
    p.c.write(encodeFrame(FrameType.SETTINGS, 0, 1, Buffer.alloc(0)))
    await connectionError(p, Http2ErrorCode.PROTOCOL_ERROR)
  })

  it('an unknown setting is ignored (and acknowledged)', async () => {
    const p = await peer(cleanup)
    p.c.write(frames.settings([[0xf0f0, 12345]]))
    await p.log.nextSettings(1)
    await ignored(p)
  })

  it('every SETTINGS after the first is reported to the listener', async () => {
    const p = await peer(cleanup)
    p.c.write(frames.settings([[Setting.MAX_FRAME_SIZE, 20_000]]))
    p.c.write(frames.settings([[Setting.MAX_CONCURRENT_STREAMS, 7]]))
    await p.log.nextSettings(2)
    expect(p.connection.maxConcurrentStreams).toBe(7)
  })
})

describe('§6.5.2 defined settings', () => {
  const invalid: [string, number, number, number][] = [
    ['SETTINGS_ENABLE_PUSH 1 from a server', Setting.ENABLE_PUSH, 1, Http2ErrorCode.PROTOCOL_ERROR],
    ['SETTINGS_ENABLE_PUSH 2', Setting.ENABLE_PUSH, 2, Http2ErrorCode.PROTOCOL_ERROR],
    ['SETTINGS_INITIAL_WINDOW_SIZE 2^31', Setting.INITIAL_WINDOW_SIZE, 2 ** 31, Http2ErrorCode.FLOW_CONTROL_ERROR],
    ['SETTINGS_MAX_FRAME_SIZE 16,383', Setting.MAX_FRAME_SIZE, 16_383, Http2ErrorCode.PROTOCOL_ERROR],
    ['SETTINGS_MAX_FRAME_SIZE 2^24', Setting.MAX_FRAME_SIZE, 2 ** 24, Http2ErrorCode.PROTOCOL_ERROR],
    ['SETTINGS_ENABLE_CONNECT_PROTOCOL 2 (RFC 8441)', Setting.ENABLE_CONNECT_PROTOCOL, 2, Http2ErrorCode.PROTOCOL_ERROR],
    ['SETTINGS_NO_RFC7540_PRIORITIES 2 (RFC 9218)', Setting.NO_RFC7540_PRIORITIES, 2, Http2ErrorCode.PROTOCOL_ERROR],
  ]
  for (const [name, id, value, code] of invalid) {
    it(`${name}: connection error ${code === Http2ErrorCode.PROTOCOL_ERROR ? 'PROTOCOL_ERROR' : 'FLOW_CONTROL_ERROR'}`, async () => {
      const { p } = await withStream()
      p.c.write(frames.settings([[id, value]]))
      await connectionError(p, code)
    })
  }

  it('SETTINGS_ENABLE_PUSH 0 is accepted', async () => {
    const p = await peer(cleanup, { settings: [[Setting.ENABLE_PUSH, 0]] })
    await ignored(p)
  })

  it('a raised SETTINGS_MAX_FRAME_SIZE lets our DATA frames grow to it, never past', async () => {
    const p = await peer(cleanup, {
      settings: [
        [Setting.MAX_FRAME_SIZE, 32_768],
        [Setting.INITIAL_WINDOW_SIZE, 1 << 20],
      ],
    })
    p.c.write(frames.windowUpdate(0, 1 << 20))
    const post = await opened(p, '/upload', { open: true })
    post.stream.write(Buffer.alloc(100_000, 1))
    post.stream.end()
    const id = post.stream.id
    await p.c.frame((f) => f.type === FrameType.DATA && f.streamId === id && (f.flags & Flag.END_STREAM) !== 0)
    const sizes = p.c.received.filter((f) => f.type === FrameType.DATA && f.streamId === id).map((f) => f.payload.length)
    expect(Math.max(...sizes)).toBe(32_768)
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(100_000)
  })

  it('SETTINGS_HEADER_TABLE_SIZE 0: our next field block starts with a table size update to 0 (RFC 7541 §6.3)', async () => {
    const p = await peer(cleanup, { settings: [[Setting.HEADER_TABLE_SIZE, 0]] })
    const get = await opened(p)
    const headers = await p.c.frame((f) => f.type === FrameType.HEADERS && f.streamId === get.stream.id)
    expect(headers.payload[0]).toBe(0x20)
  })

  it("SETTINGS_MAX_HEADER_LIST_SIZE: a request head larger than the server's limit is refused before it is sent", async () => {
    const p = await peer(cleanup, { settings: [[Setting.MAX_HEADER_LIST_SIZE, 300]] })
    expect(() => request(p.connection, '/x', { headers: { 'x-big': 'a'.repeat(300) } })).toThrow(InvalidHeaderError)
    await goesOn(p)
  })
})

describe('§6.5.3 settings synchronization', () => {
  it('no ACK of our SETTINGS within SETTINGS_ACK_TIMEOUT: connection error SETTINGS_TIMEOUT', async () => {
    const clock = new ManualClock()
    const p = await peer(cleanup, {
      script: (c) => {
        c.answerSettings = false
      },
      connect: { clock },
    })
    clock.advance(SETTINGS_ACK_TIMEOUT - 1)
    expect(p.connection.accepting).toBe(true)
    clock.advance(1)
    await connectionError(p, Http2ErrorCode.SETTINGS_TIMEOUT)
  })

  it('an ACK in time clears the deadline', async () => {
    const clock = new ManualClock()
    const p = await peer(cleanup, { connect: { clock } })
    await goesOn(p)
    expect(clock.pending()).toEqual([])
  })
})

describe('§6.6 PUSH_PROMISE', () => {
  it('PUSH_PROMISE although we disabled push: connection error PROTOCOL_ERROR', async () => {
    const { p, id } = await withStream()
    p.c.write(frames.pushPromise(id, 2, [[':method', 'GET'], [':path', '/pushed'], [':scheme', 'https'], [':authority', 'api.test']]))
    await connectionError(p, Http2ErrorCode.PROTOCOL_ERROR)
  })
})

describe('§6.7 PING', () => {
  it("the server's PING is answered with an ACK carrying the same payload", async () => {
    const p = await peer(cleanup)
    p.c.write(frames.ping(Buffer.from('12345678')))
    const ack = await p.c.frame((f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0)
    expect(ack.payload.toString()).toBe('12345678')
  })

  it('our ping() is called back on its ACK', async () => {
    const p = await peer(cleanup)
    await new Promise<void>((resolve, reject) => p.connection.ping((error) => (error ? reject(error) : resolve())))
  })

  it('a PING ACK nobody asked for is ignored', async () => {
    const p = await peer(cleanup)
    p.c.write(frames.ping(Buffer.from('unasked!'), true))
    await ignored(p)
  })

  it('PING on stream 1: connection error PROTOCOL_ERROR', async () => {
    const { p } = await withStream()
    p.c.write(encodeFrame(FrameType.PING, 0, 1, Buffer.alloc(8)))
    await connectionError(p, Http2ErrorCode.PROTOCOL_ERROR)
  })

  it('PING of 7 octets: connection error FRAME_SIZE_ERROR', async () => {
    const { p } = await withStream()
    p.c.write(encodeFrame(FrameType.PING, 0, 0, Buffer.alloc(7)))
    await connectionError(p, Http2ErrorCode.FRAME_SIZE_ERROR)
  })

  it('a ping() still unanswered when the connection fails gets ConnectionLostError', async () => {
    const p = await peer(cleanup, {
      script: (c) => {
        c.answerPings = false
      },
    })
    const answer = new Promise<Error | undefined>((resolve) => p.connection.ping(resolve))
    p.c.reset()
    expect(await answer).toBeInstanceOf(ConnectionLostError)
  })
})

describe('§6.8 GOAWAY', () => {
  async function threeStreams() {
    const p = await peer(cleanup)
    const streams = [await opened(p), await opened(p), await opened(p)]
    return { p, streams }
  }

  it('streams above last-stream-id are closed as unprocessed at once; the ones below finish', async () => {
    const { p, streams } = await threeStreams()
    p.c.write(frames.goaway(1))
    await streams[1]!.settled
    await streams[2]!.settled
    for (const above of streams.slice(1)) expect(above.closedWith).toMatchObject({ unprocessed: true, code: undefined, by: undefined })
    expect(streams[1]!.closedWith!.lost).toBeInstanceOf(ReadOnlyError)
    expect(p.connection.accepting).toBe(false)
    expect(() => request(p.connection, '/x')).toThrow(ReadOnlyError)
    p.c.write(response(1, 200, 'below'))
    await streams[0]!.settled
    expect(streams[0]!.body().toString()).toBe('below')
  })

  it('graceful two-phase shutdown: GOAWAY(2^31-1) then GOAWAY(last): both reported, streams above the second are unprocessed', async () => {
    const { p, streams } = await threeStreams()
    p.c.write(frames.goaway(2 ** 31 - 1))
    const first = await p.log.nextGoaway(1)
    expect(first.lastStreamId).toBe(2 ** 31 - 1)
    expect(p.connection.accepting).toBe(false)
    p.c.write(frames.goaway(3))
    const second = await p.log.nextGoaway(2)
    expect(second.lastStreamId).toBe(3)
    await streams[2]!.settled
    expect(streams[2]!.closedWith).toMatchObject({ unprocessed: true })
    p.c.write(response(1, 200, 'a'))
    p.c.write(response(3, 200, 'b'))
    await Promise.all([streams[0]!.settled, streams[1]!.settled])
    expect(streams.slice(0, 2).map((s) => s.body().toString())).toEqual(['a', 'b'])
  })

  it('a GOAWAY with an error code: the streams at or below last-stream-id keep running while the socket lives', async () => {
    const { p, streams } = await threeStreams()
    p.c.write(frames.goaway(3, Http2ErrorCode.INTERNAL_ERROR, 'trouble'))
    const goaway = await p.log.nextGoaway()
    expect(goaway).toMatchObject({ errorCode: Http2ErrorCode.INTERNAL_ERROR, lastStreamId: 3 })
    expect(goaway.debug.toString()).toBe('trouble')
    await streams[2]!.settled
    p.c.write(response(1, 200, 'one'))
    p.c.write(head200(3))
    p.c.write(frames.data(3, 'three', true))
    await Promise.all([streams[0]!.settled, streams[1]!.settled])
    expect(streams.slice(0, 2).map((s) => s.body().toString())).toEqual(['one', 'three'])
    expect(p.log.errors).toEqual([])
  })

  it('a GOAWAY that raises last-stream-id: connection error PROTOCOL_ERROR', async () => {
    const { p } = await threeStreams()
    p.c.write(frames.goaway(1))
    p.c.write(frames.goaway(3))
    await connectionError(p, Http2ErrorCode.PROTOCOL_ERROR)
  })

  it('the second GOAWAY of a restart followed at once by the socket closing: its last-stream-id decides', async () => {
    const { p, streams } = await threeStreams()
    p.c.write(frames.goaway(2 ** 31 - 1))
    p.c.write(response(1, 200, 'done'))
    p.c.write(frames.goaway(1))
    p.c.socket.end()
    await Promise.all(streams.map((s) => s.settled))
    expect(streams[0]!.body().toString()).toBe('done')
    for (const above of streams.slice(1)) expect(above.closedWith).toMatchObject({ unprocessed: true })
    await p.log.whenClosed()
    expect(p.log.goaways.map((g) => g.lastStreamId)).toEqual([2 ** 31 - 1, 1])
    expect(p.log.errors).toEqual([])
  })

  it('GOAWAY with a TCP reset right behind it: the GOAWAY read before the reset decides (streams above it are unprocessed)', async () => {
    const { p, streams } = await threeStreams()
    p.c.write(frames.goaway(1, Http2ErrorCode.NO_ERROR))
    p.c.reset()
    await Promise.all(streams.map((s) => s.settled))
    expect(streams[0]!.closedWith).toMatchObject({ unprocessed: false })
    expect(streams[0]!.closedWith!.lost).toBeInstanceOf(ConnectionLostError)
    for (const above of streams.slice(1)) expect(above.closedWith).toMatchObject({ unprocessed: true })
    await p.log.whenClosed()
  })

  it('GOAWAY then EOF: a stream below last-stream-id is lost (ConnectionLostError, not unprocessed)', async () => {
    const { p, streams } = await threeStreams()
    p.c.write(frames.goaway(5))
    p.c.socket.end()
    await Promise.all(streams.map((s) => s.settled))
    for (const below of streams) {
      expect(below.closedWith!.lost).toBeInstanceOf(ConnectionLostError)
      expect(below.closedWith!.unprocessed).toBe(false)
    }
  })

  it('GOAWAY on stream 1: connection error PROTOCOL_ERROR', async () => {
    const { p } = await withStream()
    p.c.write(encodeFrame(FrameType.GOAWAY, 0, 1, Buffer.alloc(8)))
    await connectionError(p, Http2ErrorCode.PROTOCOL_ERROR)
  })

  it('GOAWAY of 7 octets: connection error FRAME_SIZE_ERROR', async () => {
    const { p } = await withStream()
    p.c.write(encodeFrame(FrameType.GOAWAY, 0, 0, Buffer.alloc(7)))
    await connectionError(p, Http2ErrorCode.FRAME_SIZE_ERROR)
  })

  it('close() ends with our GOAWAY(NO_ERROR, 0) once the last stream finished, then our FIN', async () => {
    const { p, get, id } = await withStream()
    p.connection.close()
    p.c.write(response(id, 200, 'ok'))
    await get.settled
    const goaway = await ourGoaway(p.c)
    expect(goaway).toMatchObject({ code: Http2ErrorCode.NO_ERROR, lastStreamId: 0 })
    await p.log.whenClosed()
    await p.c.whenClosed()
  })

  it('close() with a server that never sends its FIN still closes the socket', async () => {
    const p = await peer(cleanup)
    p.connection.close()
    await ourGoaway(p.c)
    await p.log.whenClosed()
  })
})

describe('§6.9 WINDOW_UPDATE', () => {
  it('an increment of 0 on the connection: connection error PROTOCOL_ERROR', async () => {
    const { p } = await withStream()
    p.c.write(frames.windowUpdate(0, 0))
    await connectionError(p, Http2ErrorCode.PROTOCOL_ERROR)
  })

  it('an increment of 0 on a stream: stream error PROTOCOL_ERROR', async () => {
    const { p, get, id } = await withStream()
    p.c.write(frames.windowUpdate(id, 0))
    await streamError(p, get, Http2ErrorCode.PROTOCOL_ERROR)
  })

  it('a connection window past 2^31-1: connection error FLOW_CONTROL_ERROR', async () => {
    const { p } = await withStream()
    p.c.write(frames.windowUpdate(0, 2 ** 31 - 1))
    await connectionError(p, Http2ErrorCode.FLOW_CONTROL_ERROR)
  })

  it('a stream window past 2^31-1: stream error FLOW_CONTROL_ERROR', async () => {
    const { p, get, id } = await withStream()
    p.c.write(frames.windowUpdate(id, 2 ** 31 - 1))
    await streamError(p, get, Http2ErrorCode.FLOW_CONTROL_ERROR)
  })

  it('WINDOW_UPDATE of 3 octets: connection error FRAME_SIZE_ERROR', async () => {
    const { p } = await withStream()
    p.c.write(encodeFrame(FrameType.WINDOW_UPDATE, 0, 0, Buffer.alloc(3)))
    await connectionError(p, Http2ErrorCode.FRAME_SIZE_ERROR)
  })

  it('we never send more than the stream window; each WINDOW_UPDATE lets exactly that much more out', async () => {
    const p = await peer(cleanup, { settings: [[Setting.INITIAL_WINDOW_SIZE, 1000]] })
    const post = await opened(p, '/upload', { open: true })
    const id = post.stream.id
    post.stream.write(Buffer.alloc(5000, 1))
    post.stream.end()
    const sent = () => p.c.received.filter((f) => f.type === FrameType.DATA && f.streamId === id).reduce((n, f) => n + f.payload.length, 0)
    await p.c.frame((f) => f.type === FrameType.DATA && f.streamId === id)
    await goesOn(p)
    expect(sent()).toBe(1000)
    p.c.write(frames.windowUpdate(id, 1500))
    await goesOn(p)
    expect(sent()).toBe(2500)
    p.c.write(frames.windowUpdate(id, 2500))
    await p.c.frame((f) => f.type === FrameType.DATA && f.streamId === id && (f.flags & Flag.END_STREAM) !== 0)
    expect(sent()).toBe(5000)
  })

  it('we never send more than the connection window, across streams', async () => {
    const p = await peer(cleanup, { settings: [[Setting.INITIAL_WINDOW_SIZE, 1 << 20]] })
    const posts = [await opened(p, '/a', { open: true }), await opened(p, '/b', { open: true })]
    for (const post of posts) {
      post.stream.write(Buffer.alloc(50_000, 1))
      post.stream.end()
    }
    await p.c.frame((f) => f.type === FrameType.DATA)
    await goesOn(p)
    const sent = () => p.c.received.filter((f) => f.type === FrameType.DATA).reduce((n, f) => n + f.payload.length, 0)
    expect(sent()).toBe(DEFAULT_WINDOW)
    p.c.write(frames.windowUpdate(0, 100_000))
    await p.c.frame((f) => f.type === FrameType.DATA && f.streamId === posts[1]!.stream.id && (f.flags & Flag.END_STREAM) !== 0)
    await p.c.frame((f) => f.type === FrameType.DATA && f.streamId === posts[0]!.stream.id && (f.flags & Flag.END_STREAM) !== 0)
    expect(sent()).toBe(100_000)
  })

  it('the body a stream wrote is held, and writable() comes once it drained', async () => {
    const p = await peer(cleanup, { settings: [[Setting.INITIAL_WINDOW_SIZE, 0]] })
    const post = await opened(p, '/upload', { open: true })
    expect(post.stream.write(Buffer.alloc(70_000))).toBe(false)
    p.c.write(frames.settings([[Setting.INITIAL_WINDOW_SIZE, 1 << 20]]))
    p.c.write(frames.windowUpdate(0, 1 << 20))
    await new Promise<void>((resolve) => (post.onWritable = resolve))
    expect(post.writables).toBe(1)
  })
})

describe('§6.9.1 the flow-control window (ours)', () => {
  it('DATA beyond the stream window we granted: stream error FLOW_CONTROL_ERROR', async () => {
    const p = await peer(cleanup, { connect: { settings: { streamWindow: DEFAULT_WINDOW } } })
    const get = await opened(p)
    const id = get.stream.id
    get.onResponse = () => get.stream.pause()
    p.c.write(head200(id))
    for (let i = 0; i < 4; i++) p.c.write(frames.data(id, Buffer.alloc(16_384)))
    await streamError(p, get, Http2ErrorCode.FLOW_CONTROL_ERROR)
  })

  it('the connection window is credited as DATA arrives: paused streams holding their whole windows do not stall another stream', async () => {
    // Five paused streams hold 5 × 16,000 octets, more than the 65,535 of the connection window.
    const p = await peer(cleanup, { connect: { settings: { streamWindow: 16_000, connectionWindow: DEFAULT_WINDOW } } })
    const paused = []
    for (let i = 0; i < 5; i++) {
      const get = await opened(p, `/paused-${i}`)
      get.onResponse = () => get.stream.pause()
      p.c.write(head200(get.stream.id))
      p.c.write(frames.data(get.stream.id, Buffer.alloc(16_000, i)))
      paused.push(get)
    }
    const credit = await p.c.frame((f) => f.type === FrameType.WINDOW_UPDATE && f.streamId === 0 && f !== p.c.received[1])
    expect(credit.payload.readUInt32BE(0)).toBeGreaterThan(0)
    await goesOn(p)
    for (const get of paused) expect(get.stream.heldBytes).toBe(16_000)
  })

  it('a paused stream holds at most its window; resume() delivers it in order and credits it back', async () => {
    const p = await peer(cleanup, { connect: { settings: { streamWindow: 40_000 } } })
    const get = await opened(p)
    const id = get.stream.id
    get.onResponse = () => get.stream.pause()
    p.c.write(head200(id))
    const parts = [Buffer.alloc(16_000, 1), Buffer.alloc(16_000, 2), Buffer.alloc(8_000, 3)]
    for (const part of parts) p.c.write(frames.data(id, part))
    await goesOn(p)
    expect(get.received).toBe(0)
    expect(get.stream.heldBytes).toBe(40_000)
    expect(p.c.received.some((f) => f.type === FrameType.WINDOW_UPDATE && f.streamId === id)).toBe(false)
    get.stream.resume()
    // Credit goes back in batches of half a window: the first two frames (32,000 octets) make one.
    const update = await p.c.frame((f) => f.type === FrameType.WINDOW_UPDATE && f.streamId === id)
    expect(update.payload.readUInt32BE(0)).toBe(32_000)
    await get.whenReceived(40_000)
    expect(get.body()).toEqual(Buffer.concat(parts))
  })

  it('padding is credited back at once, even while paused', async () => {
    const p = await peer(cleanup, { connect: { settings: { streamWindow: 10_000 } } })
    const get = await opened(p)
    const id = get.stream.id
    get.onResponse = () => get.stream.pause()
    p.c.write(head200(id))
    p.c.write(encodeFrame(FrameType.DATA, Flag.PADDED, id, Buffer.concat([Buffer.from([255]), Buffer.from('x'), Buffer.alloc(255)])))
    for (let i = 0; i < 20; i++) p.c.write(encodeFrame(FrameType.DATA, Flag.PADDED, id, Buffer.concat([Buffer.from([255]), Buffer.alloc(255)])))
    const update = await p.c.frame((f) => f.type === FrameType.WINDOW_UPDATE && f.streamId === id)
    expect(update.payload.readUInt32BE(0)).toBeGreaterThanOrEqual(5000)
    expect(get.received).toBe(0)
  })
})

describe('§6.9.2 initial flow-control window size', () => {
  it('a lower SETTINGS_INITIAL_WINDOW_SIZE mid-upload can make a window negative: sending waits for WINDOW_UPDATE', async () => {
    const p = await peer(cleanup, { settings: [[Setting.INITIAL_WINDOW_SIZE, 3000]] })
    const post = await opened(p, '/upload', { open: true })
    const id = post.stream.id
    const sent = () => p.c.received.filter((f) => f.type === FrameType.DATA && f.streamId === id).reduce((n, f) => n + f.payload.length, 0)
    post.stream.write(Buffer.alloc(2000))
    await goesOn(p)
    expect(sent()).toBe(2000)
    p.c.write(frames.settings([[Setting.INITIAL_WINDOW_SIZE, 1000]]))
    await p.log.nextSettings(1)
    post.stream.write(Buffer.alloc(2000))
    post.stream.end()
    await goesOn(p)
    // Window: 3000 - 2000 sent - 2000 lowered = -1000.
    expect(sent()).toBe(2000)
    p.c.write(frames.windowUpdate(id, 1500))
    await p.c.frame((f) => f.type === FrameType.DATA && f.streamId === id && f.payload.length === 500)
    p.c.write(frames.windowUpdate(id, 1500))
    await p.c.frame((f) => f.type === FrameType.DATA && f.streamId === id && (f.flags & Flag.END_STREAM) !== 0)
    expect(sent()).toBe(4000)
  })

  it('a SETTINGS_INITIAL_WINDOW_SIZE that takes an open stream window past 2^31-1: connection error FLOW_CONTROL_ERROR', async () => {
    const { p, id } = await withStream()
    p.c.write(frames.windowUpdate(id, 2 ** 31 - 1 - DEFAULT_WINDOW))
    p.c.write(frames.settings([[Setting.INITIAL_WINDOW_SIZE, DEFAULT_WINDOW + 1]]))
    await connectionError(p, Http2ErrorCode.FLOW_CONTROL_ERROR)
  })
})

describe('§6.10 CONTINUATION', () => {
  it('a field block split over HEADERS and CONTINUATION frames is assembled', async () => {
    const { p, get, id } = await withStream()
    const block = headerBlock([...STATUS_200, ['x-split', 'yes'], ['x-long', 'v'.repeat(30_000)]])
    p.c.write(encodeFrame(FrameType.HEADERS, Flag.END_STREAM, id, block.subarray(0, 10)))
    p.c.write(frames.continuation(id, block.subarray(10, 16_000), false))
    p.c.write(frames.continuation(id, block.subarray(16_000), true))
    await get.settled
    expect(get.headers!['x-split']).toBe('yes')
    expect(get.headers!['x-long']).toHaveLength(30_000)
  })

  it('trailers in CONTINUATION frames', async () => {
    const { p, get, id } = await withStream()
    p.c.write(head200(id))
    const block = headerBlock([['grpc-status', '0']])
    p.c.write(encodeFrame(FrameType.HEADERS, Flag.END_STREAM, id, block.subarray(0, 3)))
    p.c.write(frames.continuation(id, block.subarray(3), true))
    await get.settled
    expect(get.trailers).toEqual({ 'grpc-status': '0' })
  })

  it('another frame inside a field block: connection error PROTOCOL_ERROR', async () => {
    const { p, id } = await withStream()
    p.c.write(encodeFrame(FrameType.HEADERS, 0, id, headerBlock(STATUS_200)))
    p.c.write(frames.ping())
    await connectionError(p, Http2ErrorCode.PROTOCOL_ERROR)
  })

  it('a CONTINUATION on another stream: connection error PROTOCOL_ERROR', async () => {
    const p = await peer(cleanup)
    const a = await opened(p)
    const b = await opened(p)
    p.c.write(encodeFrame(FrameType.HEADERS, 0, a.stream.id, headerBlock(STATUS_200)))
    p.c.write(frames.continuation(b.stream.id, Buffer.alloc(0), true))
    await connectionError(p, Http2ErrorCode.PROTOCOL_ERROR)
  })

  it('a CONTINUATION with no HEADERS before it: connection error PROTOCOL_ERROR', async () => {
    const { p, id } = await withStream()
    p.c.write(frames.continuation(id, headerBlock(STATUS_200), true))
    await connectionError(p, Http2ErrorCode.PROTOCOL_ERROR)
  })
})

describe('§8.1 HTTP message framing', () => {
  it('trailers are delivered with end()', async () => {
    const { p, get, id } = await withStream()
    p.c.write(head200(id))
    p.c.write(frames.data(id, 'body'))
    p.c.write(frames.headers(id, [['grpc-status', '0'], ['grpc-message', 'fine']], { endStream: true }))
    await get.settled
    expect(get.trailers).toEqual({ 'grpc-status': '0', 'grpc-message': 'fine' })
  })

  it('a trailer section without END_STREAM: stream error PROTOCOL_ERROR', async () => {
    const { p, get, id } = await withStream()
    p.c.write(head200(id))
    p.c.write(frames.headers(id, [['grpc-status', '0']]))
    await streamError(p, get, Http2ErrorCode.PROTOCOL_ERROR)
  })

  it('a pseudo-header in trailers: stream error PROTOCOL_ERROR', async () => {
    const { p, get, id } = await withStream()
    p.c.write(head200(id))
    p.c.write(frames.headers(id, [[':status', '200']], { endStream: true }))
    await streamError(p, get, Http2ErrorCode.PROTOCOL_ERROR)
  })

  it('informational responses (100, 103) are skipped; the final one is reported', async () => {
    const { p, get, id } = await withStream()
    p.c.write(frames.headers(id, [[':status', '100']]))
    p.c.write(frames.headers(id, [[':status', '103'], ['link', '</a>; rel=preload']]))
    p.c.write(response(id, 200, 'final'))
    await get.settled
    expect(get.calls).toEqual(['response', 'data', 'end'])
    expect(get.status).toBe(200)
  })

  it('an informational response with END_STREAM: stream error PROTOCOL_ERROR', async () => {
    const { p, get, id } = await withStream()
    p.c.write(frames.headers(id, [[':status', '103']], { endStream: true }))
    await streamError(p, get, Http2ErrorCode.PROTOCOL_ERROR)
  })

  it('an informational response with a malformed field: stream error PROTOCOL_ERROR', async () => {
    const { p, get, id } = await withStream()
    p.c.write(frames.headers(id, [[':status', '103'], ['Link', 'x']]))
    await streamError(p, get, Http2ErrorCode.PROTOCOL_ERROR)
  })

  it('fewer DATA octets than content-length: stream error PROTOCOL_ERROR naming the mismatch, closed by us', async () => {
    const { p, get, id } = await withStream()
    p.c.write(head200(id, [['content-length', '10']]))
    p.c.write(frames.data(id, 'short', true))
    const error = await streamError(p, get, Http2ErrorCode.PROTOCOL_ERROR)
    expect(error.message).toMatch(/ended after 5 octets of DATA, its content-length is 10/)
  })

  it('more DATA octets than content-length: stream error PROTOCOL_ERROR, seen as soon as they arrive', async () => {
    const { p, get, id } = await withStream()
    p.c.write(head200(id, [['content-length', '3']]))
    p.c.write(frames.data(id, 'toolong'))
    const error = await streamError(p, get, Http2ErrorCode.PROTOCOL_ERROR)
    expect(error.message).toMatch(/more DATA \(7 octets\) than its content-length 3/)
    expect(get.received).toBe(0)
  })

  it('content-length given twice with different values: stream error PROTOCOL_ERROR', async () => {
    const { p, get, id } = await withStream()
    p.c.write(frames.headers(id, [...STATUS_200, ['content-length', '3'], ['content-length', '4']]))
    await streamError(p, get, Http2ErrorCode.PROTOCOL_ERROR)
  })

  it('a HEAD response with content-length and no DATA is complete', async () => {
    const p = await peer(cleanup)
    const head = await opened(p, '/x', { method: 'HEAD' })
    p.c.write(frames.headers(head.stream.id, [...STATUS_200, ['content-length', '1000']], { endStream: true }))
    await head.settled
    expect(head.calls).toEqual(['response', 'end'])
  })

  it('a 304 with content-length and no DATA is complete', async () => {
    const { p, get, id } = await withStream()
    p.c.write(frames.headers(id, [[':status', '304'], ['content-length', '1000']], { endStream: true }))
    await get.settled
    expect(get.calls).toEqual(['response', 'end'])
  })

  it('a 204 carrying DATA: stream error PROTOCOL_ERROR', async () => {
    const { p, get, id } = await withStream()
    p.c.write(frames.headers(id, [[':status', '204']]))
    p.c.write(frames.data(id, 'x', true))
    await streamError(p, get, Http2ErrorCode.PROTOCOL_ERROR)
  })
})

describe('§8.2.1 field validity', () => {
  const malformed: [string, [string, string]][] = [
    ['an uppercase name', ['X-Upper', 'a']],
    ['a colon inside a name', ['x:colon', 'a']],
    ['a space in a name', ['x space', 'a']],
    ['an empty name', ['', 'a']],
    ['a CR in a value', ['x-cr', 'a\rb']],
    ['a LF in a value', ['x-lf', 'a\nb']],
    ['a NUL in a value', ['x-nul', 'a\u0000b']],
    ['a leading space in a value', ['x-lead', ' a']],
    ['a trailing tab in a value', ['x-trail', 'a\t']],
  ]
  for (const [name, field] of malformed) {
    it(`${name}: stream error PROTOCOL_ERROR, the connection goes on`, async () => {
      const { p, get, id } = await withStream()
      p.c.write(frames.headers(id, [...STATUS_200, field], { endStream: true }))
      await streamError(p, get, Http2ErrorCode.PROTOCOL_ERROR)
    })
  }

  it('an empty value and inner whitespace are fine', async () => {
    const { p, get, id } = await withStream()
    p.c.write(frames.headers(id, [...STATUS_200, ['x-empty', ''], ['x-inner', 'a  b\tc']], { endStream: true }))
    await get.settled
    expect(get.headers).toMatchObject({ 'x-empty': '', 'x-inner': 'a  b\tc' })
  })
})

describe('§8.2.2 connection-specific fields', () => {
  for (const name of ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te']) {
    it(`'${name}' in a response: stream error PROTOCOL_ERROR`, async () => {
      const { p, get, id } = await withStream()
      p.c.write(frames.headers(id, [...STATUS_200, [name, name === 'te' ? 'trailers' : 'x']], { endStream: true }))
      await streamError(p, get, Http2ErrorCode.PROTOCOL_ERROR)
    })
  }
})

describe('§8.3.2 response pseudo-header fields', () => {
  const malformed: [string, [string, string][]][] = [
    ['no :status', [['x-only', 'a']]],
    ['two :status', [[':status', '200'], [':status', '200']]],
    [':status after a regular field', [['x-first', 'a'], [':status', '200']]],
    [':path in a response', [[':status', '200'], [':path', '/']]],
    ['an unknown pseudo-header', [[':status', '200'], [':custom', 'a']]],
    [':status that is not a number', [[':status', 'abc']]],
    [':status of two digits', [[':status', '99']]],
    [':status 600', [[':status', '600']]],
  ]
  for (const [name, fields] of malformed) {
    it(`${name}: stream error PROTOCOL_ERROR`, async () => {
      const { p, get, id } = await withStream()
      p.c.write(frames.headers(id, fields, { endStream: true }))
      await streamError(p, get, Http2ErrorCode.PROTOCOL_ERROR)
    })
  }
})

describe('§8.6 101 Switching Protocols', () => {
  it('a 101 response: stream error PROTOCOL_ERROR', async () => {
    const { p, get, id } = await withStream()
    p.c.write(frames.headers(id, [[':status', '101'], ['upgrade', 'websocket']]))
    await streamError(p, get, Http2ErrorCode.PROTOCOL_ERROR)
  })
})

describe('RFC 7541 §4.1 our header list limits', () => {
  async function limited() {
    return peer(cleanup, { connect: { settings: { maxHeaderListSize: 1000, maxHeaderFields: 10 } } })
  }

  it('a response head larger than maxHeaderListSize: stream reset, PeerLimitError, the connection and HPACK go on', async () => {
    const p = await limited()
    const get = await opened(p)
    const id = get.stream.id
    // The over-limit block also indexes a field: the next response refers to it.
    const indexed = Buffer.concat([Buffer.from([0x40]), hpackLiteral('x-kept', 'yes').subarray(1)])
    p.c.write(encodeFrame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, id, Buffer.concat([Buffer.from([0x88]), indexed, hpackLiteral('x-big', 'a'.repeat(1000))])))
    expect(await ourReset(p.c, id)).toBe(Http2ErrorCode.ENHANCE_YOUR_CALM)
    await get.settled
    expect(get.closedWith!.error).toBeInstanceOf(PeerLimitError)
    expect((get.closedWith!.error as PeerLimitError).limit).toBe('maxHeaderListSize')
    const next = await opened(p)
    p.c.write(encodeFrame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, next.stream.id, Buffer.from([0x88, 0xbe])))
    await next.settled
    expect(next.headers!['x-kept']).toBe('yes')
  })

  it('more fields than maxHeaderFields: stream reset with PeerLimitError(maxHeaderFields)', async () => {
    const p = await limited()
    const get = await opened(p)
    const fields: [string, string][] = [...STATUS_200, ...Array.from({ length: 10 }, (_, i): [string, string] => [`x-${i}`, 'v'])]
    p.c.write(frames.headers(get.stream.id, fields, { endStream: true }))
    expect(await ourReset(p.c, get.stream.id)).toBe(Http2ErrorCode.ENHANCE_YOUR_CALM)
    await get.settled
    expect((get.closedWith!.error as PeerLimitError).limit).toBe('maxHeaderFields')
    await goesOn(p)
  })

  it('trailers past the limits are refused the same way', async () => {
    const p = await limited()
    const get = await opened(p)
    p.c.write(head200(get.stream.id))
    p.c.write(frames.headers(get.stream.id, [['x-trailer', 'b'.repeat(2000)]], { endStream: true }))
    expect(await ourReset(p.c, get.stream.id)).toBe(Http2ErrorCode.ENHANCE_YOUR_CALM)
    await get.settled
    expect(get.calls).toEqual(['response', 'closed'])
  })
})

describe('request bodies end to end on a raw server', () => {
  it('a body written in many small chunks is framed into full DATA frames', async () => {
    const p = await peer(cleanup, { settings: [[Setting.INITIAL_WINDOW_SIZE, 1 << 20]] })
    p.c.write(frames.windowUpdate(0, 1 << 20))
    const post = await opened(p, '/upload', { open: true })
    const body = Buffer.alloc(100_000, 3)
    pump(post, body, 100)
    const id = post.stream.id
    await p.c.frame((f) => f.type === FrameType.DATA && f.streamId === id && (f.flags & Flag.END_STREAM) !== 0)
    const data = p.c.received.filter((f) => f.type === FrameType.DATA && f.streamId === id)
    expect(Buffer.concat(data.map((f) => f.payload))).toEqual(body)
    expect(data.length).toBeLessThan(20)
  })
})

/**
 * The frame layer alone: every frame type through the writer and back
 * through the reader, the reader's checks (RFC 9113 §3.4, §4, §6), chunks
 * split anywhere, and how the writer batches a turn's frames.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { Http2ErrorCode } from '../../lib/engine.js'
import { PeerLimitError, ProtocolError } from '../../lib/errors.js'
import { CLIENT_PREFACE, Flag, FrameType, Setting } from '../../lib/wire/frame.js'
import { FrameReader, type FrameHandler } from '../../lib/wire/frame-reader.js'
import { FrameWriter, type FrameSink } from '../../lib/wire/frame-writer.js'
import { MAX_CONTINUATIONS, MAX_FRAME_SIZE } from '../../lib/wire/limits.js'

const seed = Number(process.env.FC_SEED ?? Math.floor(Math.random() * 2 ** 31))
const params = { seed, numRuns: Number(process.env.FC_RUNS ?? 200) }

type Event = [string, ...unknown[]]

/** A FrameHandler that records each call as a plain tuple (payloads copied to hex). */
class Log implements FrameHandler {
  readonly events: Event[] = []
  onData(streamId: number, data: Buffer, flowLength: number, endStream: boolean) {
    this.events.push(['data', streamId, data.toString('hex'), flowLength, endStream])
  }
  onHeaders(streamId: number, block: Buffer, endStream: boolean) {
    this.events.push(['headers', streamId, block.toString('hex'), endStream])
  }
  onPriority(streamId: number) {
    this.events.push(['priority', streamId])
  }
  onRstStream(streamId: number, code: number) {
    this.events.push(['rst', streamId, code])
  }
  onSettings(payload: Buffer) {
    this.events.push(['settings', payload.toString('hex')])
  }
  onSettingsAck() {
    this.events.push(['settings-ack'])
  }
  onPushPromise(streamId: number) {
    this.events.push(['push-promise', streamId])
  }
  onPing(payload: Buffer, ack: boolean) {
    this.events.push(['ping', payload.toString('hex'), ack])
  }
  onGoaway(lastStreamId: number, code: number, debug: Buffer) {
    this.events.push(['goaway', lastStreamId, code, debug.toString()])
  }
  onWindowUpdate(streamId: number, increment: number) {
    this.events.push(['window-update', streamId, increment])
  }
  onUnknown(type: number, streamId: number) {
    this.events.push(['unknown', type, streamId])
  }
  onStreamError(streamId: number, code: number) {
    this.events.push(['stream-error', streamId, code])
  }
}

/** A sink that records each write and each cork/uncork. */
class Sink implements FrameSink {
  readonly writes: Buffer[] = []
  corks = 0
  writable = true
  write(chunk: Buffer): boolean {
    this.writes.push(Buffer.from(chunk))
    return this.writable
  }
  cork() {
    this.corks++
  }
  uncork() {}
  bytes(): Buffer {
    return Buffer.concat(this.writes)
  }
}

function frame(type: number, flags: number, streamId: number, payload: Buffer | string = Buffer.alloc(0)): Buffer {
  const body = Buffer.from(payload as Buffer)
  const header = Buffer.alloc(9)
  header.writeUIntBE(body.length, 0, 3)
  header[3] = type
  header[4] = flags
  header.writeUInt32BE(streamId >>> 0, 5)
  return Buffer.concat([header, body])
}

const SERVER_PREFACE = frame(FrameType.SETTINGS, 0, 0)

function reader(log = new Log(), maxFieldBlock = 1 << 20): FrameReader {
  return new FrameReader(log, MAX_FRAME_SIZE, maxFieldBlock)
}

/** Parses `bytes` (after an empty server SETTINGS) in one chunk and returns the events after the preface. */
function parse(...frames: Buffer[]): Event[] {
  const log = new Log()
  reader(log).push(Buffer.concat([SERVER_PREFACE, ...frames]))
  return log.events.slice(1)
}

/** The connection error parsing throws, with its code. */
function rejects(code: number, ...frames: Buffer[]): ProtocolError {
  try {
    parse(...frames)
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolError)
    expect((error as ProtocolError).http2Code).toBe(code)
    return error as ProtocolError
  }
  throw new Error('no connection error')
}

/** Everything a writer wrote, parsed back (the client preface stripped when present). */
function roundTrip(write: (writer: FrameWriter) => void): Event[] {
  const writer = new FrameWriter()
  write(writer)
  const sink = new Sink()
  writer.flush(sink)
  return parse(sink.bytes())
}

describe('§4.1 frame format: every frame type through writer and reader', () => {
  it('SETTINGS and its ACK', () => {
    expect(
      roundTrip((w) => {
        w.settings([
          [Setting.ENABLE_PUSH, 0],
          [Setting.INITIAL_WINDOW_SIZE, 0x7fffffff],
        ])
        w.settingsAck()
      }),
    ).toEqual([['settings', '000200000000' + '00047fffffff'], ['settings-ack']])
  })

  it('PING and its ACK', () => {
    const payload = Buffer.from('0102030405060708', 'hex')
    expect(
      roundTrip((w) => {
        w.ping(payload, false)
        w.ping(payload, true)
      }),
    ).toEqual([
      ['ping', '0102030405060708', false],
      ['ping', '0102030405060708', true],
    ])
  })

  it('GOAWAY with debug data', () => {
    expect(roundTrip((w) => w.goaway(0x7fffffff, Http2ErrorCode.ENHANCE_YOUR_CALM, Buffer.from('calm')))).toEqual([['goaway', 0x7fffffff, 0xb, 'calm']])
  })

  it('RST_STREAM and WINDOW_UPDATE', () => {
    expect(
      roundTrip((w) => {
        w.rstStream(3, Http2ErrorCode.CANCEL)
        w.windowUpdate(0, 1)
        w.windowUpdate(5, 0x7fffffff)
      }),
    ).toEqual([
      ['rst', 3, Http2ErrorCode.CANCEL],
      ['window-update', 0, 1],
      ['window-update', 5, 0x7fffffff],
    ])
  })

  it('HEADERS that fit one frame, with and without END_STREAM', () => {
    expect(
      roundTrip((w) => {
        w.headers(1, Buffer.from('abc'), true, 16_384)
        w.headers(3, Buffer.from('def'), false, 16_384)
      }),
    ).toEqual([
      ['headers', 1, '616263', true],
      ['headers', 3, '646566', false],
    ])
  })

  it('a field block larger than the frame size goes as HEADERS + CONTINUATION and comes back whole', () => {
    const block = Buffer.alloc(40_000, 0x61)
    const writer = new FrameWriter()
    writer.headers(7, block, true, 16_384)
    const sink = new Sink()
    writer.flush(sink)
    const bytes = sink.bytes()
    // HEADERS (16,384) + CONTINUATION (16,384) + CONTINUATION (7,232): END_HEADERS only on the last.
    expect(bytes[3]).toBe(FrameType.HEADERS)
    expect(bytes[4]).toBe(Flag.END_STREAM)
    expect(bytes[9 + 16_384 + 3]).toBe(FrameType.CONTINUATION)
    expect(bytes[9 + 16_384 + 4]).toBe(0)
    expect(bytes[2 * (9 + 16_384) + 4]).toBe(Flag.END_HEADERS)
    expect(parse(bytes)).toEqual([['headers', 7, block.toString('hex'), true]])
  })

  it('DATA, small (copied) and large (handed over), with END_STREAM', () => {
    const large = Buffer.alloc(10_000, 7)
    expect(
      roundTrip((w) => {
        w.data(1, Buffer.from('hi'), false)
        w.data(1, large, true)
      }),
    ).toEqual([
      ['data', 1, '6869', 2, false],
      ['data', 1, large.toString('hex'), 10_000, true],
    ])
  })

  it('the client preface comes first, as written', () => {
    const writer = new FrameWriter()
    writer.preface()
    writer.settings([])
    const sink = new Sink()
    writer.flush(sink)
    expect(sink.bytes().subarray(0, 24)).toEqual(CLIENT_PREFACE)
    expect(sink.bytes().subarray(24)).toEqual(frame(FrameType.SETTINGS, 0, 0))
  })

  it('a frame of an unknown type is reported to be ignored, on stream 0 or any', () => {
    expect(parse(frame(0xfa, 0xff, 0, 'x'), frame(0x0b, 0, 9, 'y'))).toEqual([
      ['unknown', 0xfa, 0],
      ['unknown', 0x0b, 9],
    ])
  })

  it('flags a type does not define are ignored', () => {
    expect(parse(frame(FrameType.DATA, 0x40 | 0x02, 1, 'x'), frame(FrameType.PING, 0xfe, 0, Buffer.alloc(8)))).toEqual([
      ['data', 1, '78', 1, false],
      ['ping', '0000000000000000', false],
    ])
  })

  it('the reserved bit of the stream id is ignored', () => {
    expect(parse(frame(FrameType.RST_STREAM, 0, 0x80000003, Buffer.from([0, 0, 0, 8])))).toEqual([['rst', 3, 8]])
  })

  it('the reserved bit of a WINDOW_UPDATE increment and a GOAWAY last-stream-id is ignored', () => {
    expect(parse(frame(FrameType.WINDOW_UPDATE, 0, 1, Buffer.from('80000005', 'hex')), frame(FrameType.GOAWAY, 0, 0, Buffer.from('8000000700000000', 'hex')))).toEqual([
      ['window-update', 1, 5],
      ['goaway', 7, 0, ''],
    ])
  })
})

describe('§3.4 the server preface', () => {
  it('a first frame other than SETTINGS is a PROTOCOL_ERROR', () => {
    expect(() => reader().push(frame(FrameType.PING, 0, 0, Buffer.alloc(8)))).toThrow(/preface must be a SETTINGS frame/)
  })

  it('a SETTINGS ACK as first frame is a PROTOCOL_ERROR', () => {
    expect(() => reader().push(frame(FrameType.SETTINGS, Flag.ACK, 0))).toThrow(ProtocolError)
  })

  it('HTTP/1.1 bytes instead of frames are a connection error', () => {
    expect(() => reader().push(Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n'))).toThrow(ProtocolError)
  })
})

describe('§4.2 frame size', () => {
  it(`a frame of exactly ${MAX_FRAME_SIZE} octets is accepted`, () => {
    expect(parse(frame(FrameType.DATA, 0, 1, Buffer.alloc(MAX_FRAME_SIZE)))[0]!.slice(0, 2)).toEqual(['data', 1])
  })

  it('a frame larger than the maximum we announced is a FRAME_SIZE_ERROR, seen from its header alone', () => {
    const header = frame(FrameType.DATA, 0, 1).subarray(0, 9)
    header.writeUIntBE(MAX_FRAME_SIZE + 1, 0, 3)
    rejects(Http2ErrorCode.FRAME_SIZE_ERROR, header)
  })

  const lengths: [string, number, number, number][] = [
    ['RST_STREAM of 3 octets', FrameType.RST_STREAM, 1, 3],
    ['RST_STREAM of 5 octets', FrameType.RST_STREAM, 1, 5],
    ['WINDOW_UPDATE of 3 octets', FrameType.WINDOW_UPDATE, 0, 3],
    ['WINDOW_UPDATE of 5 octets on a stream', FrameType.WINDOW_UPDATE, 1, 5],
    ['PING of 7 octets', FrameType.PING, 0, 7],
    ['PING of 9 octets', FrameType.PING, 0, 9],
    ['GOAWAY of 7 octets', FrameType.GOAWAY, 0, 7],
    ['SETTINGS of 5 octets', FrameType.SETTINGS, 0, 5],
    ['SETTINGS of 13 octets', FrameType.SETTINGS, 0, 13],
  ]
  for (const [name, type, streamId, length] of lengths) {
    it(`${name} is a FRAME_SIZE_ERROR (§6)`, () => {
      rejects(Http2ErrorCode.FRAME_SIZE_ERROR, frame(type, 0, streamId, Buffer.alloc(length)))
    })
  }

  it('a SETTINGS ACK with a payload is a FRAME_SIZE_ERROR (§6.5)', () => {
    rejects(Http2ErrorCode.FRAME_SIZE_ERROR, frame(FrameType.SETTINGS, Flag.ACK, 0, Buffer.alloc(6)))
  })

  it('a PRIORITY frame of 4 octets is a stream error FRAME_SIZE_ERROR (§6.3), not a connection error', () => {
    expect(parse(frame(FrameType.PRIORITY, 0, 3, Buffer.alloc(4)))).toEqual([['stream-error', 3, Http2ErrorCode.FRAME_SIZE_ERROR]])
  })

  it('a PRIORITY frame of 5 octets is reported', () => {
    expect(parse(frame(FrameType.PRIORITY, 0, 3, Buffer.alloc(5)))).toEqual([['priority', 3]])
  })
})

describe('§6 which frames belong on stream 0', () => {
  const onZero: [string, number, Buffer][] = [
    ['DATA', FrameType.DATA, Buffer.from('x')],
    ['HEADERS', FrameType.HEADERS, Buffer.alloc(0)],
    ['PRIORITY', FrameType.PRIORITY, Buffer.alloc(5)],
    ['RST_STREAM', FrameType.RST_STREAM, Buffer.alloc(4)],
    ['PUSH_PROMISE', FrameType.PUSH_PROMISE, Buffer.alloc(4)],
    ['CONTINUATION', FrameType.CONTINUATION, Buffer.alloc(0)],
  ]
  for (const [name, type, payload] of onZero) {
    it(`${name} on stream 0 is a PROTOCOL_ERROR`, () => {
      rejects(Http2ErrorCode.PROTOCOL_ERROR, frame(type, type === FrameType.HEADERS ? Flag.END_HEADERS : 0, 0, payload))
    })
  }
  const offZero: [string, number, Buffer][] = [
    ['SETTINGS', FrameType.SETTINGS, Buffer.alloc(0)],
    ['PING', FrameType.PING, Buffer.alloc(8)],
    ['GOAWAY', FrameType.GOAWAY, Buffer.alloc(8)],
  ]
  for (const [name, type, payload] of offZero) {
    it(`${name} on stream 1 is a PROTOCOL_ERROR`, () => {
      rejects(Http2ErrorCode.PROTOCOL_ERROR, frame(type, 0, 1, payload))
    })
  }
})

describe('§6.1 DATA and §6.2 HEADERS: padding and priority fields', () => {
  it('padded DATA delivers the content, and counts the whole payload for flow control', () => {
    expect(parse(frame(FrameType.DATA, Flag.PADDED | Flag.END_STREAM, 1, Buffer.from('03616263000000', 'hex')))).toEqual([['data', 1, '616263', 7, true]])
  })

  it('padded DATA made only of padding delivers nothing', () => {
    expect(parse(frame(FrameType.DATA, Flag.PADDED, 1, Buffer.from('0200 00'.replace(' ', ''), 'hex')))).toEqual([['data', 1, '', 3, false]])
  })

  it('a pad length equal to the payload is a PROTOCOL_ERROR', () => {
    rejects(Http2ErrorCode.PROTOCOL_ERROR, frame(FrameType.DATA, Flag.PADDED, 1, Buffer.from('03616263', 'hex').subarray(0, 3)))
  })

  it('padded DATA without room for its pad length is a FRAME_SIZE_ERROR', () => {
    rejects(Http2ErrorCode.FRAME_SIZE_ERROR, frame(FrameType.DATA, Flag.PADDED, 1))
  })

  it('padded HEADERS deliver the field block without padding', () => {
    expect(parse(frame(FrameType.HEADERS, Flag.PADDED | Flag.END_HEADERS, 1, Buffer.from('0288880000', 'hex')))).toEqual([['headers', 1, '8888', false]])
  })

  it('HEADERS with PRIORITY skip its 5 octets', () => {
    expect(parse(frame(FrameType.HEADERS, Flag.PRIORITY | Flag.END_HEADERS, 1, Buffer.from('000000031088', 'hex')))).toEqual([['headers', 1, '88', false]])
  })

  it('HEADERS with PADDED and PRIORITY skip both', () => {
    expect(parse(frame(FrameType.HEADERS, Flag.PADDED | Flag.PRIORITY | Flag.END_HEADERS | Flag.END_STREAM, 1, Buffer.from('01000000031088ff', 'hex')))).toEqual([
      ['headers', 1, '88', true],
    ])
  })

  it('HEADERS padding longer than what remains after the priority fields is a PROTOCOL_ERROR', () => {
    rejects(Http2ErrorCode.PROTOCOL_ERROR, frame(FrameType.HEADERS, Flag.PADDED | Flag.PRIORITY | Flag.END_HEADERS, 1, Buffer.from('0200000003108800', 'hex').subarray(0, 7)))
  })

  it('HEADERS with PRIORITY too short for its fields is a FRAME_SIZE_ERROR', () => {
    rejects(Http2ErrorCode.FRAME_SIZE_ERROR, frame(FrameType.HEADERS, Flag.PRIORITY | Flag.END_HEADERS, 1, Buffer.alloc(4)))
  })
})

describe('§6.10 CONTINUATION', () => {
  it('HEADERS and CONTINUATION frames make one field block, END_STREAM taken from the HEADERS', () => {
    expect(
      parse(frame(FrameType.HEADERS, Flag.END_STREAM, 1, 'ab'), frame(FrameType.CONTINUATION, 0, 1, 'cd'), frame(FrameType.CONTINUATION, Flag.END_HEADERS, 1, 'ef')),
    ).toEqual([['headers', 1, Buffer.from('abcdef').toString('hex'), true]])
  })

  it('a frame of another type inside a field block is a PROTOCOL_ERROR', () => {
    rejects(Http2ErrorCode.PROTOCOL_ERROR, frame(FrameType.HEADERS, 0, 1, 'ab'), frame(FrameType.PING, 0, 0, Buffer.alloc(8)))
  })

  it('an unknown frame inside a field block is a PROTOCOL_ERROR too', () => {
    rejects(Http2ErrorCode.PROTOCOL_ERROR, frame(FrameType.HEADERS, 0, 1, 'ab'), frame(0xfa, 0, 0, 'x'))
  })

  it('a CONTINUATION on another stream is a PROTOCOL_ERROR', () => {
    rejects(Http2ErrorCode.PROTOCOL_ERROR, frame(FrameType.HEADERS, 0, 1, 'ab'), frame(FrameType.CONTINUATION, Flag.END_HEADERS, 3, 'cd'))
  })

  it('a CONTINUATION without a HEADERS before it is a PROTOCOL_ERROR', () => {
    rejects(Http2ErrorCode.PROTOCOL_ERROR, frame(FrameType.CONTINUATION, Flag.END_HEADERS, 1, 'cd'))
  })

  it('a CONTINUATION after a complete field block is a PROTOCOL_ERROR', () => {
    rejects(Http2ErrorCode.PROTOCOL_ERROR, frame(FrameType.HEADERS, Flag.END_HEADERS, 1, 'ab'), frame(FrameType.CONTINUATION, Flag.END_HEADERS, 1, 'cd'))
  })

  it(`more than ${MAX_CONTINUATIONS} CONTINUATION frames in one block is ENHANCE_YOUR_CALM (MAX_CONTINUATIONS)`, () => {
    const continuations = Array.from({ length: MAX_CONTINUATIONS + 1 }, () => frame(FrameType.CONTINUATION, 0, 1))
    const error = rejects(Http2ErrorCode.ENHANCE_YOUR_CALM, frame(FrameType.HEADERS, 0, 1, 'ab'), ...continuations)
    expect(error).toBeInstanceOf(PeerLimitError)
    expect((error as PeerLimitError).limit).toBe('MAX_CONTINUATIONS')
  })

  it(`${MAX_CONTINUATIONS} CONTINUATION frames are accepted`, () => {
    const continuations = Array.from({ length: MAX_CONTINUATIONS }, (_, i) => frame(FrameType.CONTINUATION, i === MAX_CONTINUATIONS - 1 ? Flag.END_HEADERS : 0, 1, 'x'))
    expect(parse(frame(FrameType.HEADERS, 0, 1, 'ab'), ...continuations)).toHaveLength(1)
  })

  it('a field block past its byte limit is ENHANCE_YOUR_CALM, seen from the CONTINUATION header alone', () => {
    const log = new Log()
    const limited = reader(log, 20_000)
    limited.push(SERVER_PREFACE)
    limited.push(frame(FrameType.HEADERS, 0, 1, Buffer.alloc(16_000)))
    const header = frame(FrameType.CONTINUATION, 0, 1).subarray(0, 9)
    header.writeUIntBE(5_000, 0, 3)
    let thrown: unknown
    try {
      limited.push(header)
    } catch (error) {
      thrown = error
    }
    expect(thrown).toBeInstanceOf(PeerLimitError)
    expect((thrown as PeerLimitError).limit).toBe('maxHeaderListSize')
  })
})

describe('reading chunks split anywhere', () => {
  const frames = [
    frame(FrameType.SETTINGS, 0, 0, Buffer.from('000300000064', 'hex')),
    frame(FrameType.HEADERS, Flag.END_HEADERS, 1, 'abc'),
    frame(FrameType.DATA, 0, 1, Buffer.alloc(20, 9)),
    frame(FrameType.DATA, Flag.PADDED | Flag.END_STREAM, 1, Buffer.from('0161ff', 'hex')),
    frame(FrameType.HEADERS, 0, 3, 'ab'),
    frame(FrameType.CONTINUATION, Flag.END_HEADERS, 3, 'cd'),
    frame(FrameType.PING, 0, 0, Buffer.alloc(8, 1)),
    frame(FrameType.WINDOW_UPDATE, 0, 0, Buffer.from('00001000', 'hex')),
    frame(FrameType.GOAWAY, 0, 0, Buffer.from('0000000300000000626965', 'hex')),
    frame(FrameType.DATA, 0, 5),
  ]
  const whole = Buffer.concat(frames)
  const expected = (() => {
    const log = new Log()
    reader(log).push(whole)
    return log.events
  })()

  it('one octet at a time gives the same frames as one chunk', () => {
    const log = new Log()
    const byteWise = reader(log)
    for (let i = 0; i < whole.length; i++) byteWise.push(whole.subarray(i, i + 1))
    expect(log.events).toEqual(expected)
  })

  it('any split into chunks gives the same frames (property)', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: whole.length - 1 }), { maxLength: 12 }), (cuts) => {
        const log = new Log()
        const split = reader(log)
        let start = 0
        for (const cut of [...cuts].sort((a, b) => a - b)) {
          split.push(whole.subarray(start, cut))
          start = cut
        }
        split.push(whole.subarray(start))
        expect(log.events).toEqual(expected)
      }),
      params,
    )
  })

  it('stop() holds every later frame until resume(), also across chunks', () => {
    class StopAtSettings extends Log {
      reader!: FrameReader
      override onSettings(payload: Buffer) {
        super.onSettings(payload)
        this.reader.stop()
      }
    }
    const log = new StopAtSettings()
    const held = new FrameReader(log, MAX_FRAME_SIZE, 1 << 20)
    log.reader = held
    held.push(whole.subarray(0, 40))
    expect(log.events).toEqual(expected.slice(0, 1))
    held.push(whole.subarray(40))
    expect(log.events).toHaveLength(1)
    held.resume()
    expect(log.events).toEqual(expected)
  })

  it('counts frames', () => {
    const counted = reader()
    counted.push(whole)
    expect(counted.frames).toBe(frames.length)
  })

  it('random bytes after the preface end in nothing but a ProtocolError (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.integer({ min: 1, max: 64 }), (bytes, chunk) => {
        const fuzzed = reader()
        fuzzed.push(SERVER_PREFACE)
        try {
          for (let i = 0; i < bytes.length; i += chunk) fuzzed.push(Buffer.from(bytes.subarray(i, i + chunk)))
        } catch (error) {
          expect(error).toBeInstanceOf(ProtocolError)
          expect((error as ProtocolError).http2Code).toBeTypeOf('number')
        }
      }),
      params,
    )
  })

  it('random frame headers with fitting payloads end in frames or a ProtocolError (property)', () => {
    const arbitraryFrame = fc
      .record({
        type: fc.integer({ min: 0, max: 12 }),
        flags: fc.integer({ min: 0, max: 255 }),
        streamId: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 9 }), fc.constant(0xffffffff)),
        payload: fc.uint8Array({ maxLength: 40 }),
      })
      .map(({ type, flags, streamId, payload }) => frame(type, flags, streamId, Buffer.from(payload)))
    fc.assert(
      fc.property(fc.array(arbitraryFrame, { maxLength: 20 }), (fuzzFrames) => {
        const fuzzed = reader()
        try {
          fuzzed.push(Buffer.concat([SERVER_PREFACE, ...fuzzFrames]))
        } catch (error) {
          expect(error).toBeInstanceOf(ProtocolError)
        }
      }),
      params,
    )
  })
})

describe('writing: one write per turn', () => {
  it('control frames and small DATA of one turn leave in a single write', () => {
    const writer = new FrameWriter()
    writer.settingsAck()
    writer.windowUpdate(0, 100)
    writer.headers(1, Buffer.from('x'), false, 16_384)
    writer.data(1, Buffer.from('body'), true)
    writer.rstStream(3, 8)
    const sink = new Sink()
    expect(writer.flush(sink)).toBe(true)
    expect(sink.writes).toHaveLength(1)
    expect(sink.corks).toBe(0)
    expect(parse(sink.bytes())).toHaveLength(5)
  })

  it('large DATA payloads are handed over as they are, in one corked batch', () => {
    const writer = new FrameWriter()
    const payload = Buffer.alloc(16_384, 1)
    writer.data(1, payload, false)
    writer.data(1, payload, true)
    const sink = new Sink()
    writer.flush(sink)
    expect(sink.corks).toBe(1)
    expect(sink.writes.length).toBeLessThanOrEqual(4)
    expect(parse(sink.bytes()).map((event) => event[3])).toEqual([16_384, 16_384])
  })

  it('frames keep their order across slab boundaries and turns', () => {
    const writer = new FrameWriter()
    const sink = new Sink()
    const expected: Event[] = []
    for (let turn = 0; turn < 5; turn++) {
      for (let i = 1; i <= 2_000; i++) {
        writer.windowUpdate(i * 2 + 1, turn * 10_000 + i)
        expected.push(['window-update', i * 2 + 1, turn * 10_000 + i])
      }
      writer.flush(sink)
    }
    // 26,000 octets a turn span two or three slabs: one corked batch per turn.
    expect(sink.corks).toBe(5)
    expect(parse(sink.bytes())).toEqual(expected)
  })

  it('bytes already handed to the socket are never overwritten by later frames', () => {
    const writer = new FrameWriter()
    const handed: Buffer[] = []
    const sink: FrameSink = { write: (chunk) => (handed.push(chunk), true), cork() {}, uncork() {} }
    writer.ping(Buffer.alloc(8, 1), false)
    writer.flush(sink)
    const first = Buffer.from(handed[0]!)
    for (let i = 0; i < 100; i++) writer.ping(Buffer.alloc(8, 2), true)
    writer.flush(sink)
    expect(handed[0]).toEqual(first)
  })

  it('reports what the socket said about its buffer', () => {
    const writer = new FrameWriter()
    const sink = new Sink()
    sink.writable = false
    writer.settingsAck()
    expect(writer.flush(sink)).toBe(false)
  })

  it('discard() drops what was queued', () => {
    const writer = new FrameWriter()
    writer.settingsAck()
    writer.discard()
    const sink = new Sink()
    writer.flush(sink)
    expect(sink.writes).toHaveLength(0)
    expect(writer.queued).toBe(0)
  })
})

/**
 * fast-check arbitraries that damage a recorded session the ways a broken
 * or hostile server (or a broken middlebox) would: frames dropped,
 * duplicated, reordered, a header field set to a value that matters (a
 * length, a type, flags, a stream id), bits flipped, octets inserted or
 * deleted; and cuts that split the result into socket reads anywhere,
 * frame headers included. Positions are plain naturals taken modulo the
 * session's size, so one arbitrary serves every session and shrinks well.
 */
import fc from 'fast-check'
import type { LocalSettings } from '../../lib/engine.js'
import { SETTINGS } from './harness.js'
import type { ReplayPlan } from './replay.js'
import type { LoadedSession } from './sessions.js'

export type FrameMutation =
  | { kind: 'drop'; at: number }
  | { kind: 'duplicate'; at: number }
  | { kind: 'move'; at: number; to: number }
  | { kind: 'field'; at: number; field: Field; value: number }
  | { kind: 'flip'; at: number; offset: number; bit: number }

export type ByteMutation = { kind: 'flip'; offset: number; bit: number } | { kind: 'insert'; offset: number; byte: number } | { kind: 'delete'; offset: number; count: number }

/** A frame header's fields, and the payload's first octet (the pad length of a PADDED frame). */
type Field = 'length' | 'type' | 'flags' | 'stream' | 'pad'

const at = fc.nat()
/** Values of frame header fields that a parser treats specially. */
const fieldValue = {
  length: fc.constantFrom(0, 1, 4, 5, 7, 8, 9, 16_383, 16_384, 16_385, 0xffffff, -1, +1),
  // The ten RFC 9113 types, an extension type, the largest.
  type: fc.constantFrom(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0xa, 0xff),
  // END_STREAM/ACK, END_HEADERS, PADDED, PRIORITY and combinations; unknown bits.
  flags: fc.constantFrom(0, 0x1, 0x4, 0x5, 0x8, 0x9, 0x20, 0x24, 0x2d, 0xff),
  // Stream 0, odd ids we opened, even (server-initiated) ids, never-opened ids, the largest, the reserved bit.
  stream: fc.constantFrom(0, 1, 2, 3, 4, 5, 7, 99, 101, 0x7fffffff, 0x80000001),
  pad: fc.constantFrom(0, 1, 64, 127, 128, 200, 255),
}

const frameMutation: fc.Arbitrary<FrameMutation> = fc.oneof(
  fc.record({ kind: fc.constant('drop' as const), at }),
  fc.record({ kind: fc.constant('duplicate' as const), at }),
  fc.record({ kind: fc.constant('move' as const), at, to: at }),
  fc.constantFrom<Field>('length', 'type', 'flags', 'stream', 'pad').chain((field) =>
    fc.record({ kind: fc.constant('field' as const), at, field: fc.constant(field), value: fieldValue[field] }),
  ),
  // Mostly in the header and the payload's first octets, where a frame keeps its fields (pad length, priority, codes, increments).
  fc.record({ kind: fc.constant('flip' as const), at, offset: fc.oneof(fc.nat({ max: 16 }), at), bit: fc.integer({ min: 0, max: 7 }) }),
)

const byteMutation: fc.Arbitrary<ByteMutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), offset: at, bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('insert' as const), offset: at, byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('delete' as const), offset: at, count: fc.integer({ min: 1, max: 12 }) }),
)

/** Applies frame mutations to a copy of the frames, in order. */
export function mutateFrames(frames: readonly Buffer[], mutations: readonly FrameMutation[]): Buffer[] {
  const result = [...frames]
  for (const mutation of mutations) {
    if (result.length === 0) break
    const i = mutation.at % result.length
    const frame = result[i]!
    switch (mutation.kind) {
      case 'drop':
        result.splice(i, 1)
        break
      case 'duplicate':
        result.splice(i, 0, frame)
        break
      case 'move':
        result.splice(i, 1)
        result.splice(mutation.to % (result.length + 1), 0, frame)
        break
      case 'field':
        result[i] = withField(frame, mutation.field, mutation.value)
        break
      case 'flip': {
        const copy = Buffer.from(frame)
        const offset = mutation.offset % copy.length
        copy[offset]! ^= 1 << mutation.bit
        result[i] = copy
        break
      }
    }
  }
  return result
}

function withField(frame: Buffer, field: Field, value: number): Buffer {
  if (frame.length < 9) return frame
  const copy = Buffer.from(frame)
  switch (field) {
    case 'length': {
      // -1 and +1 are relative to the true length: a frame that claims one octet less or more.
      const length = value === -1 || value === 1 ? Math.max(0, frame.readUIntBE(0, 3) + value) : value
      copy.writeUIntBE(length, 0, 3)
      break
    }
    case 'type':
      copy[3] = value
      break
    case 'flags':
      copy[4] = value
      break
    case 'stream':
      copy.writeUInt32BE(value >>> 0, 5)
      break
    case 'pad':
      if (copy.length > 9) copy[9] = value
      break
  }
  return copy
}

export function mutateBytes(bytes: Buffer, mutations: readonly ByteMutation[]): Buffer {
  let result = bytes
  for (const mutation of mutations) {
    if (result.length === 0) break
    const offset = mutation.offset % result.length
    switch (mutation.kind) {
      case 'flip':
        result = Buffer.from(result)
        result[offset]! ^= 1 << mutation.bit
        break
      case 'insert':
        result = Buffer.concat([result.subarray(0, offset), Buffer.from([mutation.byte]), result.subarray(offset)])
        break
      case 'delete':
        result = Buffer.concat([result.subarray(0, offset), result.subarray(offset + mutation.count)])
        break
    }
  }
  return result
}

/**
 * Socket reads over `length` octets: anywhere, or a few octets around a
 * frame boundary (inside a frame header), as sizes; and after which reads
 * a turn of the event loop passes.
 */
export function readsOf(cuts: ReplayParams['cuts'], frames: readonly Buffer[], length: number): ReplayPlan['reads'] {
  const starts: number[] = []
  let offset = 0
  for (const frame of frames) {
    starts.push(offset)
    offset += frame.length
  }
  const points = cuts.map((cut) => ({
    at: cut.nearFrame && starts.length > 0 ? Math.min(length, starts[cut.at % starts.length]! + (cut.at % 11)) : cut.at % (length + 1),
    turnAfter: cut.turnAfter,
  }))
  points.sort((a, b) => a.at - b.at)
  const reads: ReplayPlan['reads'] = []
  let previous = 0
  for (const point of points) {
    if (point.at <= previous) continue
    reads.push({ size: point.at - previous, turnAfter: point.turnAfter })
    previous = point.at
  }
  reads.push({ size: length - previous, turnAfter: true })
  return reads
}

/** What a replay varies, as small values (so a counterexample prints short): `planOf` makes the plan. */
export interface ReplayParams {
  frameMutations: FrameMutation[]
  byteMutations: ByteMutation[]
  cuts: { at: number; nearFrame: boolean; turnAfter: boolean }[]
  serverEnds: boolean
  blockWrites: boolean
  pause: number[]
  reset: number[]
  /** Our limits and windows: the harness's, or so small that recorded responses break them. */
  tight: boolean
}

/**
 * Limits the recorded servers did not know of: windows smaller than what
 * they send, header lists smaller than theirs. Their frames then overrun
 * our windows (FLOW_CONTROL_ERROR) and our header limits (streams reset).
 */
const TIGHT: LocalSettings = { streamWindow: 16_384, connectionWindow: 65_535, maxHeaderListSize: 300, maxHeaderFields: 6 }

/** Reads, who ends, blocked writes, paused and reset streams; and mutations when `mutated`. */
export function paramsArb(requests: number, mutated: boolean): fc.Arbitrary<ReplayParams> {
  return fc.record({
    frameMutations: mutated ? fc.array(frameMutation, { minLength: 1, maxLength: 4 }) : fc.constant([]),
    byteMutations: mutated ? fc.array(byteMutation, { maxLength: 3 }) : fc.constant([]),
    cuts: fc.array(fc.record({ at, nearFrame: fc.boolean(), turnAfter: fc.boolean() }), { maxLength: 40 }),
    serverEnds: fc.boolean(),
    blockWrites: fc.boolean(),
    pause: fc.uniqueArray(fc.nat({ max: requests - 1 }), { maxLength: 3 }),
    reset: fc.uniqueArray(fc.nat({ max: requests - 1 }), { maxLength: 2 }),
    tight: mutated ? fc.boolean() : fc.constant(false),
  })
}

export function planOf(session: LoadedSession, params: ReplayParams): ReplayPlan {
  const frames = mutateFrames(session.frameBytes, params.frameMutations)
  const bytes = mutateBytes(Buffer.concat(frames), params.byteMutations)
  return { session, bytes, reads: readsOf(params.cuts, frames, bytes.length), serverEnds: params.serverEnds, blockWrites: params.blockWrites, pause: params.pause, reset: params.reset, settings: params.tight ? TIGHT : SETTINGS }
}

/**
 * HTTP/2 frames (RFC 9113 §4, §6): the types, flags, settings and sizes
 * the frame reader (frame-reader.ts), the frame writer (frame-writer.ts)
 * and the connection share.
 */
import { ProtocolError } from '../errors.js'

export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const

export const Flag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const

/** SETTINGS parameters (RFC 9113 §6.5.2, RFC 8441 §3, RFC 9218 §2.1). */
export const Setting = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
  ENABLE_CONNECT_PROTOCOL: 0x8,
  NO_RFC7540_PRIORITIES: 0x9,
} as const

export const FRAME_HEADER_SIZE = 9
/** The client connection preface (RFC 9113 §3.4), sent before our SETTINGS. */
export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')
/** Largest flow-control window and stream id: 2^31-1 (RFC 9113 §5.1.1, §6.9.1). */
export const MAX_WINDOW = 0x7fffffff
export const MAX_STREAM_ID = 0x7fffffff
/** Every window's size until SETTINGS or WINDOW_UPDATE change it (RFC 9113 §6.9.2). */
export const DEFAULT_WINDOW = 65_535
/** SETTINGS_MAX_FRAME_SIZE's bounds (RFC 9113 §6.5.2). */
export const MIN_MAX_FRAME_SIZE = 16_384
export const MAX_MAX_FRAME_SIZE = 16_777_215

const TYPE_NAMES = Object.keys(FrameType) as (keyof typeof FrameType)[]

/** The RFC name of a frame type, or its number for an extension type. */
export function frameTypeName(type: number): string {
  return TYPE_NAMES[type] ?? `frame type 0x${type.toString(16)}`
}

/** A connection error of the given code (RFC 9113 §5.4.1). */
export function connectionError(code: number, message: string): ProtocolError {
  return new ProtocolError(message, { http2Code: code })
}

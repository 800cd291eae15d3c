/**
 * HPACK (RFC 7541), the header compression of HTTP/2: a strict decoder for
 * the responses and an encoder for the requests, over the tables both keep.
 */
export { HpackDecoder } from './hpack-decoder.js'
export { HpackEncoder } from './hpack-encoder.js'
export { HpackError } from './hpack-table.js'

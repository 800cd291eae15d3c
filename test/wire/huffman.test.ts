/**
 * The HPACK Huffman code (RFC 7541 Appendix B): the table, the RFC's
 * examples, the rejections of §5.2, and round trips over arbitrary octets.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { huffmanCodeLengths, huffmanCodes, huffmanDecode, huffmanDecodedRoom, huffmanEncode, huffmanLength } from '../../lib/wire/huffman.js'

const seed = Number(process.env.FC_SEED ?? Math.floor(Math.random() * 2 ** 31))
const params = { seed, numRuns: Number(process.env.FC_RUNS ?? 1000) }

/** Appendix B's codes ("as hex aligned to LSB"), symbols 0–255 then EOS. */
const RFC_CODES = [
  0x1ff8, 0x7fffd8, 0xfffffe2, 0xfffffe3, 0xfffffe4, 0xfffffe5, 0xfffffe6, 0xfffffe7,
  0xfffffe8, 0xffffea, 0x3ffffffc, 0xfffffe9, 0xfffffea, 0x3ffffffd, 0xfffffeb, 0xfffffec,
  0xfffffed, 0xfffffee, 0xfffffef, 0xffffff0, 0xffffff1, 0xffffff2, 0x3ffffffe, 0xffffff3,
  0xffffff4, 0xffffff5, 0xffffff6, 0xffffff7, 0xffffff8, 0xffffff9, 0xffffffa, 0xffffffb,
  0x14, 0x3f8, 0x3f9, 0xffa, 0x1ff9, 0x15, 0xf8, 0x7fa,
  0x3fa, 0x3fb, 0xf9, 0x7fb, 0xfa, 0x16, 0x17, 0x18,
  0x0, 0x1, 0x2, 0x19, 0x1a, 0x1b, 0x1c, 0x1d,
  0x1e, 0x1f, 0x5c, 0xfb, 0x7ffc, 0x20, 0xffb, 0x3fc,
  0x1ffa, 0x21, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x62,
  0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a,
  0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72,
  0xfc, 0x73, 0xfd, 0x1ffb, 0x7fff0, 0x1ffc, 0x3ffc, 0x22,
  0x7ffd, 0x3, 0x23, 0x4, 0x24, 0x5, 0x25, 0x26,
  0x27, 0x6, 0x74, 0x75, 0x28, 0x29, 0x2a, 0x7,
  0x2b, 0x76, 0x2c, 0x8, 0x9, 0x2d, 0x77, 0x78,
  0x79, 0x7a, 0x7b, 0x7ffe, 0x7fc, 0x3ffd, 0x1ffd, 0xffffffc,
  0xfffe6, 0x3fffd2, 0xfffe7, 0xfffe8, 0x3fffd3, 0x3fffd4, 0x3fffd5, 0x7fffd9,
  0x3fffd6, 0x7fffda, 0x7fffdb, 0x7fffdc, 0x7fffdd, 0x7fffde, 0xffffeb, 0x7fffdf,
  0xffffec, 0xffffed, 0x3fffd7, 0x7fffe0, 0xffffee, 0x7fffe1, 0x7fffe2, 0x7fffe3,
  0x7fffe4, 0x1fffdc, 0x3fffd8, 0x7fffe5, 0x3fffd9, 0x7fffe6, 0x7fffe7, 0xffffef,
  0x3fffda, 0x1fffdd, 0xfffe9, 0x3fffdb, 0x3fffdc, 0x7fffe8, 0x7fffe9, 0x1fffde,
  0x7fffea, 0x3fffdd, 0x3fffde, 0xfffff0, 0x1fffdf, 0x3fffdf, 0x7fffeb, 0x7fffec,
  0x1fffe0, 0x1fffe1, 0x3fffe0, 0x1fffe2, 0x7fffed, 0x3fffe1, 0x7fffee, 0x7fffef,
  0xfffea, 0x3fffe2, 0x3fffe3, 0x3fffe4, 0x7ffff0, 0x3fffe5, 0x3fffe6, 0x7ffff1,
  0x3ffffe0, 0x3ffffe1, 0xfffeb, 0x7fff1, 0x3fffe7, 0x7ffff2, 0x3fffe8, 0x1ffffec,
  0x3ffffe2, 0x3ffffe3, 0x3ffffe4, 0x7ffffde, 0x7ffffdf, 0x3ffffe5, 0xfffff1, 0x1ffffed,
  0x7fff2, 0x1fffe3, 0x3ffffe6, 0x7ffffe0, 0x7ffffe1, 0x3ffffe7, 0x7ffffe2, 0xfffff2,
  0x1fffe4, 0x1fffe5, 0x3ffffe8, 0x3ffffe9, 0xffffffd, 0x7ffffe3, 0x7ffffe4, 0x7ffffe5,
  0xfffec, 0xfffff3, 0xfffed, 0x1fffe6, 0x3fffe9, 0x1fffe7, 0x1fffe8, 0x7ffff3,
  0x3fffea, 0x3fffeb, 0x1ffffee, 0x1ffffef, 0xfffff4, 0xfffff5, 0x3ffffea, 0x7ffff4,
  0x3ffffeb, 0x7ffffe6, 0x3ffffec, 0x3ffffed, 0x7ffffe7, 0x7ffffe8, 0x7ffffe9, 0x7ffffea,
  0x7ffffeb, 0xffffffe, 0x7ffffec, 0x7ffffed, 0x7ffffee, 0x7ffffef, 0x7fffff0, 0x3ffffee,
  0x3fffffff,
]

class Failed extends Error {}
const fail = (reason: string, offset: number): never => {
  throw new Failed(`${reason} at ${offset}`)
}

const latin1 = (bytes: Uint8Array) => Buffer.from(bytes).toString('latin1')

/** Decodes `src[start, end)` into a buffer with just the room asked for, as latin1. */
function decodeRange(src: Uint8Array, start: number, end: number): string {
  const out = Buffer.alloc(2 + huffmanDecodedRoom(end - start))
  const written = huffmanDecode(src, start, end, out, 2, fail)
  expect(written).toBeLessThanOrEqual(out.length)
  return out.toString('latin1', 2, written)
}
const decode = (hex: string) => {
  const bytes = Buffer.from(hex.replace(/ /g, ''), 'hex')
  return decodeRange(bytes, 0, bytes.length)
}
const encode = (s: string) => {
  const out = new Uint8Array(huffmanLength(s))
  expect(huffmanEncode(s, out, 0)).toBe(out.length)
  return Buffer.from(out).toString('hex')
}

/** One symbol's code followed by padding to the octet, as the encoder writes it. */
function codeOctets(symbol: number): Uint8Array {
  const length = huffmanCodeLengths[symbol]!
  const octets = Math.ceil(length / 8)
  const padded = BigInt(huffmanCodes[symbol]!) << BigInt(octets * 8 - length) | ((1n << BigInt(octets * 8 - length)) - 1n)
  return Uint8Array.from({ length: octets }, (_, i) => Number((padded >> BigInt((octets - 1 - i) * 8)) & 0xffn))
}

describe('the code table', () => {
  it('has the codes and lengths of Appendix B', () => {
    expect(Array.from(huffmanCodes)).toEqual(RFC_CODES)
    expect(Array.from(huffmanCodeLengths, (length, symbol) => huffmanCodes[symbol]! < 2 ** length)).not.toContain(false)
  })

  it('decodes every symbol on its own', () => {
    for (let symbol = 0; symbol < 256; symbol++) {
      const octets = codeOctets(symbol)
      expect(decodeRange(octets, 0, octets.length)).toBe(String.fromCharCode(symbol))
    }
  })
})

describe('the examples of Appendix C', () => {
  const examples: [string, string][] = [
    ['www.example.com', 'f1e3 c2e5 f23a 6ba0 ab90 f4ff'],
    ['no-cache', 'a8eb 1064 9cbf'],
    ['custom-key', '25a8 49e9 5ba9 7d7f'],
    ['custom-value', '25a8 49e9 5bb8 e8b4 bf'],
    ['302', '6402'],
    ['private', 'aec3 771a 4b'],
    ['Mon, 21 Oct 2013 20:13:21 GMT', 'd07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff'],
    ['https://www.example.com', '9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3'],
    ['307', '640e ff'],
    ['Mon, 21 Oct 2013 20:13:22 GMT', 'd07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff'],
    ['gzip', '9bd9 ab'],
    [
      'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1',
      '94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07',
    ],
  ]
  it.each(examples)('%s', (text, hex) => {
    expect(decode(hex)).toBe(text)
    expect(encode(text)).toBe(hex.replace(/ /g, ''))
  })

  it('decodes a string in the middle of a buffer', () => {
    const bytes = Buffer.from('00 9bd9ab 00'.replace(/ /g, ''), 'hex')
    expect(decodeRange(bytes, 1, 4)).toBe('gzip')
  })

  it('decodes and encodes the empty string', () => {
    expect(decode('')).toBe('')
    expect(encode('')).toBe('')
  })
})

describe('malformed strings (§5.2)', () => {
  it('rejects padding longer than 7 bits', () => {
    // 'a' is 00011; then 11 one bits.
    expect(() => decode('1f ff')).toThrow(/padding longer than 7 bits at 0/)
    // A whole octet of ones after complete codes.
    expect(() => decode('9bd9ab ff')).toThrow(/padding longer than 7 bits/)
  })

  it('rejects padding that is not all ones', () => {
    // 'a' then 000.
    expect(() => decode('18')).toThrow(/padding that is not all ones/)
    // 'a' then 101.
    expect(() => decode('1d')).toThrow(/padding that is not all ones/)
  })

  it('rejects the EOS symbol', () => {
    // 30 ones, then two more padding bits.
    expect(() => decode('ff ff ff ff')).toThrow(/EOS symbol/)
    // 'a', EOS, then padding.
    expect(() => decode('1f ff ff ff ff')).toThrow(/EOS symbol/)
    // EOS, then 'a' 'a'.
    expect(() => decode('ff ff ff fc 63')).toThrow(/EOS symbol/)
  })

  it('reports the offset of the string', () => {
    const bytes = Buffer.from('000018', 'hex')
    expect(() => decodeRange(bytes, 2, 3)).toThrow(/at 2$/)
  })
})

describe('properties', () => {
  const octets = fc.uint8Array({ maxLength: 300 })

  it('encodes then decodes any octets back', () => {
    fc.assert(
      fc.property(octets, (bytes) => {
        const text = latin1(bytes)
        const out = new Uint8Array(huffmanLength(text) + 2)
        const end = huffmanEncode(text, out, 1)
        expect(end).toBe(1 + huffmanLength(text))
        expect(decodeRange(out, 1, end)).toBe(text)
      }),
      params,
    )
  })

  it('decodes any octets to a string or a failure, nothing else', () => {
    fc.assert(
      fc.property(octets, (bytes) => {
        try {
          const text = decodeRange(bytes, 0, bytes.length)
          // Each symbol takes at least 5 bits.
          expect(text.length).toBeLessThanOrEqual(Math.floor((bytes.length * 8) / 5))
          // What decodes re-encodes to the same octets: the padding is canonical.
          expect(encode(text)).toBe(Buffer.from(bytes).toString('hex'))
        } catch (error) {
          expect(error).toBeInstanceOf(Failed)
        }
      }),
      params,
    )
  })
})

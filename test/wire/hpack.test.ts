/**
 * The HPACK codec (RFC 7541): the examples of Appendix C, every rejection
 * of a malformed block, the encoder's choices, and round-trip properties.
 * The public interoperability corpus is in hpack-corpus.test.ts.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { HpackDecoder, HpackEncoder, HpackError } from '../../lib/wire/hpack.js'

const seed = Number(process.env.FC_SEED ?? Math.floor(Math.random() * 2 ** 31))
const params = { seed, numRuns: Number(process.env.FC_RUNS ?? 300) }

type Field = [name: string, value: string]

const hex = (text: string) => Buffer.from(text.replace(/\s/g, ''), 'hex')

function decode(decoder: HpackDecoder, block: Uint8Array): Field[] {
  const fields: Field[] = []
  decoder.decode(block, (name, value) => fields.push([name, value]))
  return fields
}

function encode(encoder: HpackEncoder, fields: readonly Field[]): Buffer {
  encoder.start()
  for (const [name, value] of fields) encoder.field(name, value)
  return encoder.finish()
}

/** The error `decode` throws, which must be an HpackError. */
function rejection(decoder: HpackDecoder, block: string | Uint8Array): HpackError {
  try {
    decode(decoder, typeof block === 'string' ? hex(block) : block)
  } catch (error) {
    expect(error).toBeInstanceOf(HpackError)
    return error as HpackError
  }
  throw new Error('the block was accepted')
}

// ── Appendix C ─────────────────────────────────────────────────────────────

interface Step {
  fields: Field[]
  /** The dynamic table after the block, newest first, and its size. */
  table: Field[]
  size: number
}

const REQUESTS: Step[] = [
  {
    fields: [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']],
    table: [[':authority', 'www.example.com']],
    size: 57,
  },
  {
    fields: [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'], ['cache-control', 'no-cache']],
    table: [['cache-control', 'no-cache'], [':authority', 'www.example.com']],
    size: 110,
  },
  {
    fields: [[':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value']],
    table: [['custom-key', 'custom-value'], ['cache-control', 'no-cache'], [':authority', 'www.example.com']],
    size: 164,
  },
]

const COOKIE = 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1'
const RESPONSES: Step[] = [
  {
    fields: [[':status', '302'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'], ['location', 'https://www.example.com']],
    table: [['location', 'https://www.example.com'], ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'], ['cache-control', 'private'], [':status', '302']],
    size: 222,
  },
  {
    fields: [[':status', '307'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'], ['location', 'https://www.example.com']],
    table: [[':status', '307'], ['location', 'https://www.example.com'], ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'], ['cache-control', 'private']],
    size: 222,
  },
  {
    fields: [
      [':status', '200'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:22 GMT'],
      ['location', 'https://www.example.com'], ['content-encoding', 'gzip'], ['set-cookie', COOKIE],
    ],
    table: [['set-cookie', COOKIE], ['content-encoding', 'gzip'], ['date', 'Mon, 21 Oct 2013 20:13:22 GMT']],
    size: 215,
  },
]

const SEQUENCES = [
  {
    name: 'C.3 requests without Huffman coding',
    steps: REQUESTS,
    wires: [
      '8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
      '8286 84be 5808 6e6f 2d63 6163 6865',
      '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65',
    ],
  },
  {
    name: 'C.4 requests with Huffman coding',
    steps: REQUESTS,
    wires: [
      '8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff',
      '8286 84be 5886 a8eb 1064 9cbf',
      '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf',
    ],
  },
  {
    name: 'C.5 responses without Huffman coding',
    steps: RESPONSES,
    tableSize: 256,
    wires: [
      '4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
      '4803 3330 37c1 c0bf',
      '88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31',
    ],
  },
  {
    name: 'C.6 responses with Huffman coding',
    steps: RESPONSES,
    tableSize: 256,
    wires: [
      '4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3',
      '4883 640e ffc1 c0bf',
      '88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07',
    ],
  },
]

/**
 * The responses of C.5 and C.6 assume both ends start with a 256-octet
 * table. Over HTTP/2 the tables start at 4096, so the peer's encoder
 * announces the smaller one (§4.2): a size update to 256 before the first block.
 */
const SIZE_UPDATE_256 = '3fe101'

describe('RFC 7541 Appendix C', () => {
  describe('C.2 header field representations', () => {
    const examples: [string, string, Field, Field[], number][] = [
      ['C.2.1 literal with indexing', '400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572', ['custom-key', 'custom-header'], [['custom-key', 'custom-header']], 55],
      ['C.2.2 literal without indexing', '040c 2f73 616d 706c 652f 7061 7468', [':path', '/sample/path'], [], 0],
      ['C.2.3 literal never indexed', '1008 7061 7373 776f 7264 0673 6563 7265 74', ['password', 'secret'], [], 0],
      ['C.2.4 indexed', '82', [':method', 'GET'], [], 0],
    ]
    it.each(examples)('%s', (_, wire, field, table, size) => {
      const decoder = new HpackDecoder()
      expect(decode(decoder, hex(wire))).toEqual([field])
      expect(decoder.tableEntries).toEqual(table)
      expect(decoder.tableSize).toBe(size)
    })
  })

  describe.each(SEQUENCES)('$name', ({ steps, wires, tableSize }) => {
    it('decodes each block to its fields, leaving the dynamic table the RFC shows', () => {
      const decoder = new HpackDecoder(tableSize)
      for (const [i, { fields, table, size }] of steps.entries()) {
        const wire = i === 0 && tableSize === 256 ? SIZE_UPDATE_256 + wires[i] : wires[i]!
        expect(decode(decoder, hex(wire)), `block ${i + 1}`).toEqual(fields)
        expect(decoder.tableEntries, `table after block ${i + 1}`).toEqual(table)
        expect(decoder.tableSize, `table size after block ${i + 1}`).toBe(size)
      }
    })

    it('encodes the header lists so that they decode back', () => {
      const encoder = new HpackEncoder(tableSize)
      const decoder = new HpackDecoder(tableSize)
      for (const { fields } of steps) expect(decode(decoder, encode(encoder, fields))).toEqual(fields)
      expect(decoder.tableSize).toBe(encoder.tableSize)
    })
  })

  it('C.1 integers: 10 and 1337 with a 5-bit prefix, in table size updates', () => {
    const encoder = new HpackEncoder()
    encoder.setMaxTableSize(10)
    expect(encode(encoder, []).toString('hex')).toBe('2a')
    encoder.setMaxTableSize(1337)
    expect(encode(encoder, []).toString('hex')).toBe('3f9a0a')
    expect(rejection(new HpackDecoder(1336), '3f9a0a').message).toMatch(/update to 1337/)
  })
})

// ── Decoder ────────────────────────────────────────────────────────────────

describe('decoder', () => {
  it('evicts the oldest entries to make room, and empties the table for an entry larger than it', () => {
    const decoder = new HpackDecoder()
    decode(decoder, hex('3f45')) // size update: 100
    decode(decoder, hex('4001 6101 62')) // a: b, 34 octets
    decode(decoder, hex('4001 6301 64')) // c: d
    expect(decoder.tableEntries).toEqual([['c', 'd'], ['a', 'b']])
    decode(decoder, hex('4001 6501 66')) // e: f evicts a: b
    expect(decoder.tableEntries).toEqual([['e', 'f'], ['c', 'd']])
    expect(decoder.tableSize).toBe(68)
    // An entry of 32 + 1 + 68 octets does not fit: the table ends up empty.
    const big = `4001 78 44 ${'79'.repeat(68)}`
    expect(decode(decoder, hex(big))).toEqual([['x', 'y'.repeat(68)]])
    expect(decoder.tableEntries).toEqual([])
    expect(decoder.tableSize).toBe(0)
  })

  it('refers to a name in the dynamic table that the same literal evicts', () => {
    const decoder = new HpackDecoder()
    decode(decoder, hex('3f09')) // size update: 40
    decode(decoder, hex('4001 6101 62')) // a: b
    // Literal with indexing, name index 62 (a), value "cc": replaces a: b.
    expect(decode(decoder, hex('7e 02 6363'))).toEqual([['a', 'cc']])
    expect(decoder.tableEntries).toEqual([['a', 'cc']])
  })

  it('applies size updates in order, before the fields', () => {
    const decoder = new HpackDecoder()
    decode(decoder, hex('4001 6101 62'))
    expect(decoder.tableSize).toBe(34)
    // 0 then 4096: the table is emptied, then may grow again.
    expect(decode(decoder, hex('20 3fe11f 4001 6301 64'))).toEqual([['c', 'd']])
    expect(decoder.tableEntries).toEqual([['c', 'd']])
  })

  it('after a lower SETTINGS_HEADER_TABLE_SIZE, takes the size update due and evicts', () => {
    const decoder = new HpackDecoder()
    decode(decoder, hex('4001 6101 62 4001 6301 64'))
    decoder.setMaxTableSize(40)
    expect(decode(decoder, hex('3f09 82'))).toEqual([[':method', 'GET']])
    expect(decoder.tableEntries).toEqual([['c', 'd']])
    // A higher setting needs no update; the encoder may take it up, to 8192 here.
    decoder.setMaxTableSize(8192)
    expect(decode(decoder, hex('82'))).toEqual([[':method', 'GET']])
    expect(decode(decoder, hex('3fe13f'))).toEqual([])
  })

  it('after the setting fell and rose again, takes the smallest first, then the final size', () => {
    const decoder = new HpackDecoder()
    decoder.setMaxTableSize(100)
    decoder.setMaxTableSize(4096)
    expect(decode(decoder, hex('3f45 3fe11f 82'))).toEqual([[':method', 'GET']])
  })

  it('fills the table right from a block with much literal text', () => {
    const decoder = new HpackDecoder()
    const long = 'z'.repeat(1500)
    const block = hex(`00 01 61 7f dd 0a ${Buffer.from(long).toString('hex')} 40 03 782d61 06 73746f726564`)
    expect(decode(decoder, block)).toEqual([['a', long], ['x-a', 'stored']])
    expect(decode(decoder, hex('be'))).toEqual([['x-a', 'stored']])
  })

  it('returns names and values as latin1, one char per octet', () => {
    const decoder = new HpackDecoder()
    const fields = decode(decoder, hex('0003 e97f00 03 ff0d0a 0f2b 02 c3a9'))
    expect(fields).toEqual([['\u00e9\u007f\u0000', '\u00ff\r\n'], ['user-agent', '\u00c3\u00a9']])
  })

  it('decodes a Uint8Array that is a view into a larger buffer', () => {
    const bytes = new Uint8Array([0xff, 0x82, 0x86, 0x41, 0x01, 0x61, 0xff])
    expect(decode(new HpackDecoder(), bytes.subarray(1, 6))).toEqual([[':method', 'GET'], [':scheme', 'http'], [':authority', 'a']])
  })

  it('decodes blocks far larger than usual, and the ones after them', () => {
    const encoder = new HpackEncoder()
    const decoder = new HpackDecoder()
    const many: Field[] = Array.from({ length: 5000 }, () => [':method', 'GET'])
    expect(decode(decoder, encode(encoder, many))).toEqual(many)
    const huge: Field[] = [['x-huge', 'q'.repeat(40_000)], ...REQUEST_HEAD]
    expect(decode(decoder, encode(encoder, huge))).toEqual(huge)
    for (let i = 0; i < 3; i++) expect(decode(decoder, encode(encoder, REQUEST_HEAD))).toEqual(REQUEST_HEAD)
    // A Huffman-coded value of 20 000 zero octets: 32 000 '0's (5 bits each).
    const coded = hex(`00 01 61 ff a19b01 ${'00'.repeat(20_000)}`)
    expect(decode(decoder, coded)).toEqual([['a', '0'.repeat(32_000)]])
    expect(decode(decoder, encode(encoder, REQUEST_HEAD))).toEqual(REQUEST_HEAD)
  })

  it('decodes an empty block to no fields', () => {
    expect(decode(new HpackDecoder(), new Uint8Array(0))).toEqual([])
  })

  it('keeps the table whole when the caller ignores the fields', () => {
    const ignoring = new HpackDecoder(256)
    const keeping = new HpackDecoder(256)
    for (const [i, wire] of SEQUENCES[3]!.wires.entries()) {
      const block = hex(i === 0 ? SIZE_UPDATE_256 + wire : wire)
      ignoring.decode(block, () => {})
      decode(keeping, block)
      expect(ignoring.tableEntries).toEqual(keeping.tableEntries)
    }
    expect(ignoring.tableEntries).toEqual(RESPONSES[2]!.table)
  })
})

describe('decoder rejects', () => {
  const rejects = (block: string, message: RegExp, decoder = new HpackDecoder()) =>
    expect(rejection(decoder, block).message).toMatch(message)

  it('index 0', () => rejects('82 80', /^index 0 \(byte 1 of the header block\)$/))

  it('an index beyond the static and dynamic tables', () => {
    rejects('be', /index 62 beyond the tables \(61 static, 0 dynamic entries\)/)
    rejects('4001 6101 62 bf', /index 63 beyond the tables \(61 static, 1 dynamic entries\) \(byte 5/)
    // As the name of a literal, with and without indexing.
    rejects('7e 01 61', /index 62 beyond/)
    rejects('0f2f 01 61', /index 62 beyond/)
  })

  it('an integer above 2^31 - 1', () => {
    rejects('ff ff ff ff ff 0f', /integer 4294967422 above 2147483647 \(byte 0/)
    rejects('ff 80 80 80 80 08', /integer 2147483775 above 2147483647/)
  })

  it('an integer of more than 5 continuation octets', () => {
    rejects('ff 80 80 80 80 80 00', /integer of more than 5 continuation octets/)
    // Five are fine: this is index 127, an index too far but a valid integer.
    rejects('ff 80 80 80 80 00', /index 127 beyond/)
  })

  it('a string running past the end of the block', () => {
    rejects('00 05 6162', /string of 5 octets running past the end of the block \(byte 1/)
    rejects('40 01 61 7f 80 01', /string of 255 octets running past/)
    rejects('04 85 6162', /string of 5 octets running past/)
  })

  it('Huffman padding longer than 7 bits', () => rejects('00 82 1fff 01 61', /Huffman padding longer than 7 bits \(byte 2/))

  it('Huffman padding that is not all ones', () => rejects('04 81 18', /Huffman padding that is not all ones \(byte 2/))

  it('the EOS symbol inside a Huffman string', () => {
    rejects('04 84 ffffffff', /EOS symbol inside a Huffman string \(byte 2/)
    rejects('04 85 1fffffffff', /EOS symbol/)
  })

  it('a truncated block', () => {
    rejects('40', /truncated header block \(byte 1/)
    rejects('04', /truncated header block \(byte 1/)
    rejects('40 01 61', /truncated header block \(byte 3/)
    rejects('82 ff', /truncated integer \(byte 1/)
    rejects('0f', /truncated integer/)
    rejects('04 ff 80', /truncated integer \(byte 1/)
    rejects('3f', /truncated integer/)
  })

  it('a dynamic table size update above the announced maximum', () => {
    rejects('3fe21f', /dynamic table size update to 4097, above the 4096 allowed/)
    rejects('3fe11f', /update to 4096, above the 100 allowed/, new HpackDecoder(100))
  })

  it('a dynamic table size update after a field', () => {
    rejects('82 3f45', /dynamic table size update after a field \(byte 1/)
    rejects('20 82 20', /after a field \(byte 2/)
  })

  it('a block without the size update due after the setting went down', () => {
    const decoder = new HpackDecoder()
    decoder.setMaxTableSize(100)
    rejects('82', /no dynamic table size update to at most 100 at the start of the block/, decoder)
    const empty = new HpackDecoder(0)
    expect(rejection(empty, new Uint8Array(0)).message).toMatch(/at most 0/)
  })

  it('a first size update above the smallest setting since the last block', () => {
    const decoder = new HpackDecoder()
    decoder.setMaxTableSize(100)
    decoder.setMaxTableSize(4096)
    rejects('3fe11f 82', /update to 4096, where the first one must be at most 100/, decoder)
  })

  it('any block after a failed one', () => {
    const decoder = new HpackDecoder()
    rejection(decoder, '80')
    expect(rejection(decoder, '82').message).toMatch(/decoder used again after a header block failed/)
  })

  it('any block after a field callback threw, which leaves the table unknown', () => {
    const decoder = new HpackDecoder()
    expect(() =>
      decoder.decode(hex('82'), () => {
        throw new RangeError('caller')
      }),
    ).toThrow(RangeError)
    expect(rejection(decoder, '82').message).toMatch(/used again/)
  })

  it('with an HpackError named HpackError', () => {
    const error = rejection(new HpackDecoder(), '80')
    expect(error.name).toBe('HpackError')
    expect(error.offset).toBe(0)
    expect(error).toBeInstanceOf(Error)
  })
})

// ── Encoder ────────────────────────────────────────────────────────────────

const REQUEST_HEAD: Field[] = [
  [':method', 'GET'],
  [':scheme', 'https'],
  [':authority', 'api.example.com'],
  [':path', '/v1/items'],
  ['user-agent', 'drainpipe/0.1.0'],
  ['accept', 'application/json'],
  ['x-tenant', 'acme'],
]

describe('encoder', () => {
  it('sends a repeated request head as one octet per field, the path from its third time on', () => {
    const encoder = new HpackEncoder()
    const decoder = new HpackDecoder()
    const blocks = [1, 2, 3, 4].map(() => {
      const block = encode(encoder, REQUEST_HEAD)
      expect(decode(decoder, block)).toEqual(REQUEST_HEAD)
      return block
    })
    // Second: the path as a literal with indexing (name index 4), the rest indexed: the
    // authority (65) before the path's entry (62) pushes it and the others one further.
    expect(blocks[1]!.toString('hex')).toBe(`8287c1${'4409'}${Buffer.from('/v1/items').toString('hex')}c1c0bf`)
    expect(blocks.slice(2).map((block) => block.length)).toEqual([REQUEST_HEAD.length, REQUEST_HEAD.length])
    expect(encoder.tableSize).toBe(decoder.tableSize)
  })

  it('uses the static table for whole fields and for names', () => {
    const encoder = new HpackEncoder()
    expect(encode(encoder, [[':method', 'POST'], ['accept-encoding', 'gzip, deflate'], [':authority', '']]).toString('hex')).toBe('839081')
    // Literal without indexing, name index 28 (content-length), value "12" raw.
    expect(encode(encoder, [['content-length', '12']]).toString('hex')).toBe('0f0d023132')
  })

  it('refers to a name in the dynamic table for a new value', () => {
    const encoder = new HpackEncoder()
    expect(encode(encoder, [['x-a', 'one']]).toString('hex')).toBe('4003782d61036f6e65')
    // Literal with indexing, name index 62.
    expect(encode(encoder, [['x-a', 'two']]).toString('hex')).toBe('7e0374776f')
    expect(encode(encoder, [['x-a', 'one']]).toString('hex')).toBe('bf')
  })

  it('keeps values that change with every request out of the table', () => {
    const encoder = new HpackEncoder()
    const decoder = new HpackDecoder()
    for (let i = 0; i < 3; i++) decode(decoder, encode(encoder, REQUEST_HEAD))
    const steady = encoder.tableSize
    for (let i = 0; i < 200; i++) {
      const head: Field[] = [...REQUEST_HEAD, [':path', `/v1/items/${i}`], ['content-length', String(1000 + i)]]
      expect(decode(decoder, encode(encoder, head))).toEqual(head)
    }
    expect(encoder.tableSize).toBe(steady)
  })

  it('never indexes secrets (§7.1.3)', () => {
    const secrets: Field[] = [
      ['authorization', 'Bearer abcdefghijklmnopqrstuvwxyz0123456789'],
      ['proxy-authorization', 'Basic dXNlcjpwYXNz'],
      ['set-cookie', 'id=a3fWa; Max-Age=2592000'],
      ['cookie', 'session=12345'],
    ]
    const encoder = new HpackEncoder()
    const decoder = new HpackDecoder()
    for (const field of secrets) {
      for (let i = 0; i < 3; i++) {
        const block = encode(encoder, [field])
        expect(block[0]! & 0xf0, `${field[0]}, time ${i + 1}`).toBe(0x10)
        expect(decode(decoder, block)).toEqual([field])
      }
    }
    expect(encoder.tableSize).toBe(0)
  })

  it('indexes a cookie of 20 octets or more', () => {
    const encoder = new HpackEncoder()
    const cookie: Field = ['cookie', 'session=0123456789ab']
    expect(encode(encoder, [cookie])[0]!).toBe(0x40 | 32)
    expect(encode(encoder, [cookie]).toString('hex')).toBe('be')
  })

  it('indexes a path, and the like, only when it is sent again', () => {
    const encoder = new HpackEncoder()
    const call: Field[] = [[':path', '/pkg.Service/Method'], ['grpc-timeout', '100m'], ['x-request-id', 'b1d3']]
    // Literals without indexing, with indexing, then indexed.
    expect(Array.from(encode(encoder, call).subarray(0, 1))).toEqual([0x04])
    expect(Array.from(encode(encoder, call).subarray(0, 1))).toEqual([0x44])
    expect(encode(encoder, call).toString('hex')).toBe('c0bfbe')
  })

  it('does not index a field that would take more than 3/4 of the table', () => {
    const encoder = new HpackEncoder()
    const field: Field = ['x-big', 'v'.repeat(3040)]
    for (let i = 0; i < 3; i++) encode(encoder, [field])
    expect(encoder.tableSize).toBe(0)
    const fits: Field = ['x-big', 'v'.repeat(3030)]
    for (let i = 0; i < 3; i++) encode(encoder, [fits])
    expect(encoder.tableSize).toBe(3030 + 5 + 32)
  })

  it('sends strings raw, not Huffman-coded, as latin1', () => {
    const encoder = new HpackEncoder()
    expect(encode(encoder, [[':authority', 'www.example.com']]).toString('hex')).toBe('410f' + Buffer.from('www.example.com').toString('hex'))
    expect(encode(encoder, [['x', '\u00e9\u00ff\u0000']]).toString('hex')).toBe('40017803e9ff00')
  })

  it('returns a block that later blocks do not overwrite', () => {
    const encoder = new HpackEncoder()
    const first = encode(encoder, REQUEST_HEAD)
    const copy = Buffer.from(first)
    encode(encoder, [['x-other', 'z'.repeat(5000)]])
    expect(first).toEqual(copy)
  })

  describe('table size updates', () => {
    it('announces a smaller table before the first block', () => {
      const encoder = new HpackEncoder(0)
      const block = encode(encoder, REQUEST_HEAD)
      expect(block[0]).toBe(0x20)
      expect(decode(new HpackDecoder(0), block)).toEqual(REQUEST_HEAD)
    })

    it('uses no table when the peer allows none', () => {
      const encoder = new HpackEncoder(0)
      const decoder = new HpackDecoder(0)
      for (let i = 0; i < 5; i++) expect(decode(decoder, encode(encoder, REQUEST_HEAD))).toEqual(REQUEST_HEAD)
      expect(encoder.tableSize).toBe(0)
      expect(encode(encoder, REQUEST_HEAD).length).toBeGreaterThan(REQUEST_HEAD.length * 2)
    })

    it('sends the smallest then the final size when the setting fell and rose between blocks', () => {
      const encoder = new HpackEncoder()
      encoder.setMaxTableSize(100)
      encoder.setMaxTableSize(3000)
      encoder.setMaxTableSize(2000)
      // 100 = 31 + 69; 2000 = 31 + 1969 (0x31 | 0x80, 15).
      expect(encode(encoder, []).toString('hex')).toBe('3f45' + '3fb10f')
    })

    it('sends one update when the setting only fell', () => {
      const encoder = new HpackEncoder()
      encoder.setMaxTableSize(1000)
      encoder.setMaxTableSize(500)
      expect(encode(encoder, [[':method', 'GET']]).toString('hex')).toBe('3fd503' + '82')
      expect(encode(encoder, [[':method', 'GET']]).toString('hex')).toBe('82')
    })

    it('announces the size after any change of the setting, even one that leaves the table as it was', () => {
      const encoder = new HpackEncoder()
      encoder.setMaxTableSize(500)
      encoder.setMaxTableSize(4096)
      expect(encode(encoder, []).toString('hex')).toBe('3fd503' + '3fe11f')
      encoder.setMaxTableSize(65536)
      expect(encode(encoder, []).toString('hex')).toBe('3fe11f')
      expect(encode(encoder, []).toString('hex')).toBe('')
    })

    it('uses at most a 4096-octet table, whatever the peer allows', () => {
      // Both ends' tables start at 4096: nothing to announce.
      const encoder = new HpackEncoder(1 << 20)
      expect(encode(encoder, [[':method', 'GET']]).toString('hex')).toBe('82')
      encoder.setMaxTableSize(1000)
      encoder.setMaxTableSize(2 ** 32 - 1)
      expect(encode(encoder, []).toString('hex')).toBe('3fc907' + '3fe11f')
    })

    it('evicts what no longer fits, in step with the decoder', () => {
      const encoder = new HpackEncoder()
      const decoder = new HpackDecoder()
      for (let i = 0; i < 3; i++) decode(decoder, encode(encoder, REQUEST_HEAD))
      encoder.setMaxTableSize(120)
      decoder.setMaxTableSize(120)
      for (let i = 0; i < 3; i++) expect(decode(decoder, encode(encoder, REQUEST_HEAD))).toEqual(REQUEST_HEAD)
      expect(encoder.tableSize).toBeLessThanOrEqual(120)
      expect(decoder.tableSize).toBe(encoder.tableSize)
    })
  })
})

// ── Properties ─────────────────────────────────────────────────────────────

const latin1 = fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((code) => String.fromCharCode(code)), maxLength: 40 })
const names = fc.oneof(
  fc.constantFrom(':method', ':path', ':authority', ':scheme', 'user-agent', 'accept-encoding', 'content-length', 'cookie', 'authorization', 'set-cookie', 'x-trace'),
  latin1,
)
const values = fc.oneof(
  fc.constantFrom('', 'GET', 'POST', '/', 'https', 'gzip, deflate', 'session=0123456789abcdef'),
  latin1,
  fc.string({ maxLength: 2000 }),
)
/** SETTINGS_HEADER_TABLE_SIZE values, tiny ones included. */
const tableSizes = fc.oneof(fc.constantFrom(0, 1, 31, 32, 33, 64, 100, 256, 4096, 65536), fc.nat(5000))

describe('properties', () => {
  it('any header lists, over one connection with table size changes, decode to what was encoded', () => {
    const connection = fc.record({
      initialSize: fc.option(tableSizes, { nil: undefined }),
      // A pool of fields that the blocks pick from, so that fields repeat.
      pool: fc.array(fc.tuple(names, values), { minLength: 1, maxLength: 12 }),
      blocks: fc.array(
        fc.record({
          // SETTINGS changes before the block: none, one, or a fall and a rise.
          sizes: fc.array(tableSizes, { maxLength: 2 }),
          picks: fc.array(fc.nat(), { maxLength: 15 }),
        }),
        { minLength: 1, maxLength: 12 },
      ),
    })
    fc.assert(
      fc.property(connection, ({ initialSize, pool, blocks }) => {
        const encoder = new HpackEncoder(initialSize)
        const decoder = new HpackDecoder(initialSize)
        for (const { sizes, picks } of blocks) {
          for (const size of sizes) {
            encoder.setMaxTableSize(size)
            decoder.setMaxTableSize(size)
          }
          const fields = picks.map((pick) => pool[pick % pool.length]!)
          expect(decode(decoder, encode(encoder, fields))).toEqual(fields)
          expect(decoder.tableSize).toBe(encoder.tableSize)
        }
      }),
      params,
    )
  })

  it('random octets decode or throw HpackError, nothing else', () => {
    const blocks = fc.array(fc.uint8Array({ maxLength: 120 }), { minLength: 1, maxLength: 8 })
    fc.assert(
      fc.property(fc.option(tableSizes, { nil: undefined }), blocks, (size, list) => {
        let decoder = new HpackDecoder(size)
        for (const block of list) {
          try {
            decoder.decode(block, () => {})
          } catch (error) {
            expect(error).toBeInstanceOf(HpackError)
            decoder = new HpackDecoder(size)
          }
        }
      }),
      { ...params, numRuns: 2000 },
    )
  })
})

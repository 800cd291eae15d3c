/**
 * HPACK (RFC 7541), the header compression of HTTP/2: the static and dynamic
 * tables, a strict decoder for the responses, and an encoder for the requests.
 *
 * Names and values are latin1 strings, one char per octet; validating them
 * (lowercase names, pseudo-headers, forbidden octets) is the connection's job.
 */
import { huffmanDecode, huffmanDecodedRoom } from './huffman.js'

/** A malformed header block: the connection must end with COMPRESSION_ERROR (RFC 9113 §4.3). */
export class HpackError extends Error {
  override name = 'HpackError'
  /** Where in the header block the faulty representation, integer or string starts. */
  readonly offset: number

  constructor(reason: string, offset: number) {
    super(`${reason} (byte ${offset} of the header block)`)
    this.offset = offset
  }
}

/** SETTINGS_HEADER_TABLE_SIZE before any SETTINGS (RFC 9113 §6.5.2): both ends' tables start at this size. */
const INITIAL_TABLE_SIZE = 4096

/** What an entry costs beyond its octets (§4.1). */
const ENTRY_OVERHEAD = 32

/** Integers above this are refused: no length, index or table size needs more. */
const MAX_INTEGER = 2 ** 31 - 1
/** Continuation octets of one integer at most: 5 carry 35 bits, enough for MAX_INTEGER with any prefix. */
const MAX_CONTINUATION_OCTETS = 5

/** The static table (Appendix A), index 1 first. */
const STATIC_TABLE: readonly (readonly [name: string, value: string])[] = [
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
]
const STATIC_COUNT = STATIC_TABLE.length
/** By index; index 0 is invalid and never looked up. */
const STATIC_NAMES = ['', ...STATIC_TABLE.map(([name]) => name)]
const STATIC_VALUES = ['', ...STATIC_TABLE.map(([, value]) => value)]

/**
 * The dynamic table (§2.3.2, §4): a FIFO of entries, newest first, bounded
 * by the sum of the entries' sizes. Ring buffers, grown as entries come.
 */
class DynamicTable {
  #names: string[] = new Array<string>(16).fill('')
  #values: string[] = new Array<string>(16).fill('')
  /** Slot of the next entry; `#names.length` is a power of two. */
  #next = 0
  count = 0
  size = 0
  maxSize = INITIAL_TABLE_SIZE
  /** Entries ever added: the newest entry's id is `inserted - 1`. */
  inserted = 0

  /** The name of the entry `age` insertions old (0: the newest). */
  name(age: number): string {
    return this.#names[(this.#next - 1 - age) & (this.#names.length - 1)]!
  }

  value(age: number): string {
    return this.#values[(this.#next - 1 - age) & (this.#values.length - 1)]!
  }

  /** Adds an entry, evicting the oldest ones to make room; one larger than the table only empties it (§4.4). */
  add(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD
    while (this.count > 0 && this.size + size > this.maxSize) this.#evictOldest()
    if (size > this.maxSize) return
    if (this.count === this.#names.length) this.#grow()
    const slot = this.#next
    this.#names[slot] = name
    this.#values[slot] = value
    this.#next = (slot + 1) & (this.#names.length - 1)
    this.count++
    this.size += size
    this.added(name, value, this.inserted++)
  }

  setMaxSize(maxSize: number): void {
    this.maxSize = maxSize
    while (this.size > maxSize) this.#evictOldest()
  }

  /** For the encoder's index of the entries. */
  protected added(_name: string, _value: string, _id: number): void {}
  protected evicted(_name: string, _value: string, _id: number): void {}

  #evictOldest(): void {
    const slot = (this.#next - this.count) & (this.#names.length - 1)
    const name = this.#names[slot]!
    const value = this.#values[slot]!
    this.#names[slot] = this.#values[slot] = ''
    this.size -= name.length + value.length + ENTRY_OVERHEAD
    this.evicted(name, value, this.inserted - this.count)
    this.count--
  }

  #grow(): void {
    const names = new Array<string>(this.#names.length * 2).fill('')
    const values = new Array<string>(names.length).fill('')
    for (let age = this.count - 1, slot = 0; age >= 0; age--, slot++) {
      names[slot] = this.name(age)
      values[slot] = this.value(age)
    }
    this.#names = names
    this.#values = values
    this.#next = this.count
  }
}

function huffmanFailed(reason: string, offset: number): never {
  throw new HpackError(reason, offset)
}

// A field representation as the first pass records it, in 6 slots:
// kind, index (of the field, or of the name; 0: a literal name), offset in
// the block, then where the literal name starts, where it ends and the
// value starts, and where the value ends in the block's text.
const INDEXED = 0
const INCREMENTAL = 1
const UNINDEXED = 2
const OP_SLOTS = 6
/** Room for this many representations at first: a response head has a dozen or two. */
const INITIAL_OPS = 64

/** Strings up to this long are copied in a loop: for them that beats a call into C++. */
const SHORT_STRING = 16

/** Working buffers start this large; one that grew past KEPT_BUFFER for a large block is let go after it. */
const INITIAL_BUFFER = 1024
const KEPT_BUFFER = 16 * 1024

/**
 * Above this many octets of literal text in one block, strings that go into
 * the dynamic table are copied out rather than sliced, so that an entry does
 * not keep a large block's text alive.
 */
const SLICED_TEXT_LIMIT = 1024

/**
 * Decodes the header blocks of one connection's responses, in the order they
 * arrive: the dynamic table is shared state, so every block must be decoded
 * completely (the caller drops the fields it does not want by ignoring them).
 *
 * A block is decoded in two passes. The first parses it and writes every
 * literal string, raw or Huffman-coded, into one buffer; the second makes one
 * string of that buffer, resolves the indices against the table as the
 * block changes it, and hands out slices. Making a string from octets costs
 * a call into C++ (some 50–100 ns); a slice does not.
 */
export class HpackDecoder {
  readonly #table = new DynamicTable()
  /** The SETTINGS_HEADER_TABLE_SIZE we announced: what a size update may ask for. */
  #limit = INITIAL_TABLE_SIZE
  /**
   * After #limit fell below the table's size, the next block must start with
   * an update to at most the smallest limit since (§4.2); -1 when none is due.
   */
  #shrinkDue = -1
  /** Set while a block is decoded; still set after an error, which leaves the table unknown. */
  #broken = false
  /** Offset of the next octet to read in the block being decoded. */
  #pos = 0
  /** The representations of the block, as the first pass records them. */
  #ops = new Int32Array(INITIAL_OPS * OP_SLOTS)
  /** The block's literal strings, decoded, one after the other. */
  #text = Buffer.allocUnsafeSlow(INITIAL_BUFFER)
  #textLength = 0

  /**
   * maxTableSize: the SETTINGS_HEADER_TABLE_SIZE we announced (default 4096).
   * Both tables start at 4096 octets: below that, the peer's first block must
   * start with a size update (§4.2), as after any fall of the setting.
   */
  constructor(maxTableSize = INITIAL_TABLE_SIZE) {
    this.setMaxTableSize(maxTableSize)
  }

  /** A new SETTINGS_HEADER_TABLE_SIZE we announced was acknowledged: it applies from the next block. */
  setMaxTableSize(size: number): void {
    this.#limit = size
    if (size < this.#table.maxSize) this.#shrinkDue = this.#shrinkDue < 0 ? size : Math.min(this.#shrinkDue, size)
  }

  /** @internal For tests: the dynamic table's size (§4.1). */
  get tableSize(): number {
    return this.#table.size
  }

  /** @internal For tests: the dynamic table's entries, newest first. */
  get tableEntries(): [name: string, value: string][] {
    return Array.from({ length: this.#table.count }, (_, age) => [this.#table.name(age), this.#table.value(age)])
  }

  /**
   * Decodes one complete header block, calling `field` for every field in order.
   * Throws HpackError on malformed input; after a throw the decoder must not be used again.
   * `field` must not throw: that too leaves the decoder unusable.
   */
  decode(block: Uint8Array, field: (name: string, value: string) => void): void {
    if (this.#broken) throw new HpackError('decoder used again after a header block failed', 0)
    this.#broken = true
    this.#pos = 0
    this.#textLength = 0
    this.#sizeUpdates(block)
    const opsEnd = this.#parse(block)
    this.#emit(opsEnd, field)
    if (this.#ops.byteLength > KEPT_BUFFER) this.#ops = new Int32Array(INITIAL_OPS * OP_SLOTS)
    if (this.#text.length > KEPT_BUFFER) this.#text = Buffer.allocUnsafeSlow(INITIAL_BUFFER)
    this.#broken = false
  }

  /** Dynamic table size updates (§6.3), allowed only before the block's first field. */
  #sizeUpdates(src: Uint8Array): void {
    while (this.#pos < src.length && (src[this.#pos]! & 0xe0) === 0x20) {
      const start = this.#pos
      const size = this.#integer(src, 0x1f)
      if (size > this.#limit) {
        throw new HpackError(`dynamic table size update to ${size}, above the ${this.#limit} allowed`, start)
      }
      if (this.#shrinkDue >= 0) {
        if (size > this.#shrinkDue) {
          throw new HpackError(`dynamic table size update to ${size}, where the first one must be at most ${this.#shrinkDue}`, start)
        }
        this.#shrinkDue = -1
      }
      this.#table.setMaxSize(size)
    }
    if (this.#shrinkDue >= 0) {
      throw new HpackError(
        `no dynamic table size update to at most ${this.#shrinkDue} at the start of the block after SETTINGS_HEADER_TABLE_SIZE went down`,
        this.#pos,
      )
    }
  }

  /** First pass: records the representations and decodes the literal strings; returns the end of the records. */
  #parse(src: Uint8Array): number {
    let ops = this.#ops
    let end = 0
    while (this.#pos < src.length) {
      if (end + OP_SLOTS > ops.length) {
        ops = new Int32Array(ops.length * 2)
        ops.set(this.#ops)
        this.#ops = ops
      }
      const start = this.#pos
      const octet = src[start]!
      if (octet & 0x80) {
        // Indexed field (§6.1).
        const index = this.#integer(src, 0x7f)
        if (index === 0) throw new HpackError('index 0', start)
        ops[end] = INDEXED
        ops[end + 1] = index
      } else {
        if ((octet & 0xe0) === 0x20) throw new HpackError('dynamic table size update after a field', start)
        // With incremental indexing (§6.2.1); without indexing (§6.2.2) or never indexed (§6.2.3),
        // which are the same to a decoder that does not re-encode.
        const incremental = octet & 0x40
        const index = this.#integer(src, incremental ? 0x3f : 0x0f)
        ops[end] = incremental ? INCREMENTAL : UNINDEXED
        ops[end + 1] = index
        ops[end + 3] = this.#textLength
        if (index === 0) this.#string(src)
        ops[end + 4] = this.#textLength
        this.#string(src)
        ops[end + 5] = this.#textLength
      }
      ops[end + 2] = start
      end += OP_SLOTS
    }
    return end
  }

  /** Second pass: resolves the indices, fills the dynamic table, and calls `field` for each field. */
  #emit(opsEnd: number, field: (name: string, value: string) => void): void {
    const ops = this.#ops
    const table = this.#table
    const textLength = this.#textLength
    const text = textLength === 0 ? '' : this.#text.toString('latin1', 0, textLength)
    for (let op = 0; op < opsEnd; op += OP_SLOTS) {
      const kind = ops[op]!
      const index = ops[op + 1]!
      if (kind === INDEXED) {
        if (index <= STATIC_COUNT) {
          field(STATIC_NAMES[index]!, STATIC_VALUES[index]!)
        } else {
          const age = this.#dynamicAge(index, ops[op + 2]!)
          field(table.name(age), table.value(age))
        }
        continue
      }
      const split = ops[op + 4]!
      let name: string
      if (index === 0) name = text.substring(ops[op + 3]!, split)
      else if (index <= STATIC_COUNT) name = STATIC_NAMES[index]!
      else name = table.name(this.#dynamicAge(index, ops[op + 2]!))
      const value = text.substring(split, ops[op + 5]!)
      if (kind === INCREMENTAL) {
        if (textLength > SLICED_TEXT_LIMIT) {
          table.add(index === 0 ? this.#text.toString('latin1', ops[op + 3]!, split) : name, this.#text.toString('latin1', split, ops[op + 5]!))
        } else {
          table.add(name, value)
        }
      }
      field(name, value)
    }
  }

  #dynamicAge(index: number, start: number): number {
    const age = index - STATIC_COUNT - 1
    if (age >= this.#table.count) {
      throw new HpackError(`index ${index} beyond the tables (${STATIC_COUNT} static, ${this.#table.count} dynamic entries)`, start)
    }
    return age
  }

  /** A string literal (§5.2): decodes it to the end of the block's text. */
  #string(src: Uint8Array): void {
    const start = this.#pos
    const huffman = src[start]! & 0x80
    const length = this.#integer(src, 0x7f)
    const from = this.#pos
    const to = from + length
    if (length > src.length - from) {
      throw new HpackError(`string of ${length} octets running past the end of the block`, start)
    }
    this.#pos = to
    const room = this.#textLength + (huffman ? huffmanDecodedRoom(length) : length)
    if (room > this.#text.length) {
      const text = Buffer.allocUnsafeSlow(Math.max(room, this.#text.length * 2))
      this.#text.copy(text, 0, 0, this.#textLength)
      this.#text = text
    }
    const text = this.#text
    if (huffman) {
      this.#textLength = huffmanDecode(src, from, to, text, this.#textLength, huffmanFailed)
    } else if (length > SHORT_STRING) {
      text.set(src.subarray(from, to), this.#textLength)
      this.#textLength += length
    } else {
      let at = this.#textLength
      for (let i = from; i < to; i++) text[at++] = src[i]!
      this.#textLength = at
    }
  }

  /** An integer with a prefix of the bits in `prefixMask` (§5.1). */
  #integer(src: Uint8Array, prefixMask: number): number {
    const start = this.#pos
    if (start >= src.length) throw new HpackError('truncated header block', start)
    let value = src[start]! & prefixMask
    let pos = start + 1
    if (value === prefixMask) {
      let scale = 1
      let octet: number
      let count = 0
      do {
        if (pos >= src.length) throw new HpackError('truncated integer', start)
        if (++count > MAX_CONTINUATION_OCTETS) {
          throw new HpackError(`integer of more than ${MAX_CONTINUATION_OCTETS} continuation octets`, start)
        }
        octet = src[pos++]!
        value += (octet & 0x7f) * scale
        scale *= 128
      } while (octet & 0x80)
      if (value > MAX_INTEGER) throw new HpackError(`integer ${value} above ${MAX_INTEGER}`, start)
    }
    this.#pos = pos
    return value
  }
}

// ── Encoding ────────────────────────────────────────────────────────────────

/**
 * The largest dynamic table the encoder uses, whatever the peer allows:
 * repeated request heads fit, and it bounds the memory of a connection.
 */
const ENCODER_TABLE_LIMIT = 4096

/** Distinct unindexed values of VARYING_NAMES remembered to spot repeats; the memory starts over when full. */
const SEEN_LIMIT = 64

/**
 * Request fields whose values usually change with every request: indexing
 * each would push the fields that repeat out of the table.
 */
const VARYING_NAMES = new Set([
  ':path',
  'content-length',
  'if-match',
  'if-modified-since',
  'if-none-match',
  'if-range',
  'if-unmodified-since',
  'range',
  'grpc-timeout',
  'traceparent',
  'x-request-id',
  'idempotency-key',
])

/** What the encoder knows of a name: its place in the static table and its entries in the dynamic one. */
interface KnownName {
  /** The first static table index with this name; 0 when there is none. */
  readonly staticIndex: number
  /** Static table indices by value. */
  readonly staticValues: ReadonlyMap<string, number>
  /** Values shorter than this are never indexed (§7.1.3): secrets, and cookies short enough to guess. */
  readonly neverIndexBelow: number
  /** One of VARYING_NAMES: a value is indexed only when it is sent again. */
  readonly varies: boolean
  /** Id of the newest dynamic table entry with this name; -1 when there is none. */
  newest: number
  /** Ids of the dynamic table entries by value (the newest one's, for a value there twice). */
  readonly dynamicValues: Map<string, number>
}

const NEVER_INDEXED: Record<string, number> = {
  authorization: Infinity,
  'proxy-authorization': Infinity,
  'set-cookie': Infinity,
  cookie: 20,
}

function knownName(name: string, staticIndex: number, staticValues: ReadonlyMap<string, number>, neverIndexBelow: number): KnownName {
  return { staticIndex, staticValues, neverIndexBelow, varies: VARYING_NAMES.has(name), newest: -1, dynamicValues: new Map() }
}

/** The static table by name: the names' KnownName before any dynamic table entry. */
const STATIC_BY_NAME = new Map<string, KnownName>()
for (const [i, [name, value]] of STATIC_TABLE.entries()) {
  let known = STATIC_BY_NAME.get(name)
  if (known === undefined) {
    known = knownName(name, i + 1, new Map(), NEVER_INDEXED[name] ?? 0)
    STATIC_BY_NAME.set(name, known)
  }
  ;(known.staticValues as Map<string, number>).set(value, i + 1)
}

const NO_VALUES: ReadonlyMap<string, number> = new Map()

/**
 * A name in neither table; never changed: a name gets its own KnownName when
 * it enters the dynamic table. Its `varies` is looked up apart.
 */
const UNKNOWN_NAME = knownName('', 0, NO_VALUES, 0)

/** The dynamic table, with what the static and dynamic tables have for each name. */
class EncoderTable extends DynamicTable {
  /** The static table's names once used, and the dynamic table's. */
  readonly #names = new Map<string, KnownName>()

  /** The index (§2.3.3) of the entry with this id. */
  index(id: number): number {
    return STATIC_COUNT + this.inserted - id
  }

  known(name: string): KnownName {
    const known = this.#names.get(name)
    if (known !== undefined) return known
    const fromStatic = STATIC_BY_NAME.get(name)
    if (fromStatic === undefined) return UNKNOWN_NAME
    const learnt = knownName(name, fromStatic.staticIndex, fromStatic.staticValues, fromStatic.neverIndexBelow)
    this.#names.set(name, learnt)
    return learnt
  }

  protected override added(name: string, value: string, id: number): void {
    let known = this.known(name)
    if (known === UNKNOWN_NAME) {
      known = knownName(name, 0, NO_VALUES, 0)
      this.#names.set(name, known)
    }
    known.newest = id
    known.dynamicValues.set(value, id)
  }

  protected override evicted(name: string, value: string, id: number): void {
    const known = this.#names.get(name)!
    // The oldest entry goes first: if it was the newest with its name, it was the only one.
    if (known.newest === id) {
      if (known.staticIndex === 0) {
        this.#names.delete(name)
      } else {
        known.newest = -1
        known.dynamicValues.clear()
      }
    } else if (known.dynamicValues.get(value) === id) {
      known.dynamicValues.delete(value)
    }
  }
}

/**
 * Encodes the header blocks of one connection's requests. Every finished
 * block must reach the peer, in order: each one can change the dynamic table.
 *
 * Fields are sent from the static table where it has them, from the dynamic
 * table once they were added there, and added to it the first time they are
 * sent; except the fields whose values usually change with every request
 * (VARYING_NAMES: paths, content lengths, conditionals, request and trace
 * ids), added only when a value is sent again: a gRPC method's path gets
 * indexed, unique paths do not push out the fields that repeat. Secrets are
 * never indexed (§7.1.3).
 */
export class HpackEncoder {
  readonly #table = new EncoderTable()
  #buffer = Buffer.allocUnsafeSlow(INITIAL_BUFFER)
  #length = 0
  /** The smallest and the last table size to announce at the next block; -1 when there is none. */
  #smallestSize = -1
  #finalSize = -1
  /** Values of VARYING_NAMES sent without indexing, with their names. */
  readonly #seen = new Map<string, string>()

  /**
   * maxTableSize: the peer's SETTINGS_HEADER_TABLE_SIZE (default 4096). Both
   * tables start at 4096 octets; if the encoder uses another size, the first
   * block announces it.
   */
  constructor(maxTableSize = INITIAL_TABLE_SIZE) {
    const used = Math.min(maxTableSize, ENCODER_TABLE_LIMIT)
    if (used !== INITIAL_TABLE_SIZE) this.#smallestSize = this.#finalSize = used
  }

  /**
   * The peer's SETTINGS_HEADER_TABLE_SIZE changed: the next block starts with
   * a dynamic table size update (§6.3), smallest-then-final if it shrank and
   * grew between blocks. The final size is announced even when the encoder's
   * table keeps its size (it uses at most 4096 octets), as strict peers expect.
   */
  setMaxTableSize(size: number): void {
    const used = Math.min(size, ENCODER_TABLE_LIMIT)
    this.#smallestSize = this.#smallestSize < 0 ? used : Math.min(this.#smallestSize, used)
    this.#finalSize = used
  }

  /** @internal For tests: the dynamic table's size (§4.1). */
  get tableSize(): number {
    return this.#table.size
  }

  /** Begins a header block. */
  start(): void {
    this.#length = 0
    if (this.#finalSize < 0) return
    if (this.#smallestSize < this.#finalSize) this.#sizeUpdate(this.#smallestSize)
    this.#sizeUpdate(this.#finalSize)
    this.#smallestSize = this.#finalSize = -1
  }

  /** Appends one field (name already lowercase). */
  field(name: string, value: string): void {
    // Two string lengths of at most 5 octets and an index of at most 3 (indices stay below 200).
    this.#reserve(name.length + value.length + 13)
    const table = this.#table
    const known = table.known(name)
    if (value.length < known.neverIndexBelow) {
      this.#literal(0x10, 0x0f, known.staticIndex, name, value)
      return
    }
    const staticIndex = known.staticValues.get(value)
    if (staticIndex !== undefined) {
      this.#integer(staticIndex, 0x7f, 0x80)
      return
    }
    const id = known.dynamicValues.get(value)
    if (id !== undefined) {
      this.#integer(table.index(id), 0x7f, 0x80)
      return
    }
    const nameIndex = known.staticIndex !== 0 ? known.staticIndex : known.newest >= 0 ? table.index(known.newest) : 0
    if (this.#worthIndexing(known, name, value)) {
      this.#literal(0x40, 0x3f, nameIndex, name, value)
      table.add(name, value)
    } else {
      this.#literal(0x00, 0x0f, nameIndex, name, value)
    }
  }

  /** Ends the block and returns its bytes. */
  finish(): Buffer {
    const block = Buffer.allocUnsafe(this.#length)
    this.#buffer.copy(block, 0, 0, this.#length)
    if (this.#buffer.length > KEPT_BUFFER) this.#buffer = Buffer.allocUnsafeSlow(INITIAL_BUFFER)
    return block
  }

  /** Whether to add the field to the table: it fits without emptying most of it, and it is likely to be sent again. */
  #worthIndexing(known: KnownName, name: string, value: string): boolean {
    if ((name.length + value.length + ENTRY_OVERHEAD) * 4 > this.#table.maxSize * 3) return false
    if (!(known === UNKNOWN_NAME ? VARYING_NAMES.has(name) : known.varies)) return true
    if (this.#seen.get(value) === name) {
      this.#seen.delete(value)
      return true
    }
    if (this.#seen.size === SEEN_LIMIT) this.#seen.clear()
    this.#seen.set(value, name)
    return false
  }

  #sizeUpdate(size: number): void {
    this.#reserve(6)
    this.#integer(size, 0x1f, 0x20)
    this.#table.setMaxSize(size)
  }

  #literal(flags: number, prefixMask: number, nameIndex: number, name: string, value: string): void {
    this.#integer(nameIndex, prefixMask, flags)
    if (nameIndex === 0) this.#string(name)
    this.#string(value)
  }

  /**
   * A string literal (§5.2), never Huffman-coded: that saves about a fifth
   * of a literal's octets but costs 10–20 ns of CPU for each octet saved,
   * where sending an octet (AES-GCM included) costs under 1 ns, and the
   * peer's decoder pays again (see bench/hpack.ts).
   */
  #string(s: string): void {
    const length = s.length
    this.#integer(length, 0x7f, 0)
    const buffer = this.#buffer
    if (length > SHORT_STRING) {
      this.#length += buffer.write(s, this.#length, 'latin1')
      return
    }
    let at = this.#length
    // A Uint8Array store keeps a char's low 8 bits: latin1.
    for (let i = 0; i < length; i++) buffer[at++] = s.charCodeAt(i)
    this.#length = at
  }

  /** An integer with `prefixMask` bits of prefix in an octet that starts with `flags` (§5.1). */
  #integer(value: number, prefixMask: number, flags: number): void {
    const buffer = this.#buffer
    if (value < prefixMask) {
      buffer[this.#length++] = flags | value
      return
    }
    buffer[this.#length++] = flags | prefixMask
    value -= prefixMask
    while (value >= 0x80) {
      buffer[this.#length++] = (value & 0x7f) | 0x80
      value >>>= 7
    }
    buffer[this.#length++] = value
  }

  #reserve(octets: number): void {
    if (this.#length + octets <= this.#buffer.length) return
    const buffer = Buffer.allocUnsafeSlow(Math.max(this.#buffer.length * 2, this.#length + octets))
    this.#buffer.copy(buffer, 0, 0, this.#length)
    this.#buffer = buffer
  }
}

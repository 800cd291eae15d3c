/**
 * HPACK decoding (RFC 7541 §3, §6): a strict decoder of a connection's
 * response header blocks. Names and values come out as latin1 strings, one
 * char per octet; validating them is the connection's job.
 */
import { huffmanDecode, huffmanDecodedRoom } from './huffman.js'
import {
  DynamicTable,
  HpackError,
  INITIAL_BUFFER,
  INITIAL_TABLE_SIZE,
  KEPT_BUFFER,
  MAX_CONTINUATION_OCTETS,
  MAX_INTEGER,
  SHORT_STRING,
  STATIC_COUNT,
  STATIC_NAMES,
  STATIC_VALUES,
} from './hpack-table.js'

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

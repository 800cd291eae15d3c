/**
 * HPACK encoding (RFC 7541 §6): the encoder of a connection's request heads,
 * compact for the fields sent over and over, never indexing sensitive ones.
 */
import {
  DynamicTable,
  ENTRY_OVERHEAD,
  INITIAL_BUFFER,
  INITIAL_TABLE_SIZE,
  KEPT_BUFFER,
  SHORT_STRING,
  STATIC_COUNT,
  STATIC_TABLE,
} from './hpack-table.js'

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

/**
 * HPACK's tables (RFC 7541 §2.3): the static table, and the dynamic table
 * both the decoder and the encoder keep, with the limits they share.
 */

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
export const INITIAL_TABLE_SIZE = 4096

/** What an entry costs beyond its octets (§4.1). */
export const ENTRY_OVERHEAD = 32

/** Integers above this are refused: no length, index or table size needs more. */
export const MAX_INTEGER = 2 ** 31 - 1
/** Continuation octets of one integer at most: 5 carry 35 bits, enough for MAX_INTEGER with any prefix. */
export const MAX_CONTINUATION_OCTETS = 5

/** Strings up to this long are copied in a loop: for them that beats a call into C++. */
export const SHORT_STRING = 16

/** Working buffers start this large; one that grew past KEPT_BUFFER for a large block is let go after it. */
export const INITIAL_BUFFER = 1024
export const KEPT_BUFFER = 16 * 1024

/** The static table (Appendix A), index 1 first. */
export const STATIC_TABLE: readonly (readonly [name: string, value: string])[] = [
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
export const STATIC_COUNT = STATIC_TABLE.length
/** By index; index 0 is invalid and never looked up. */
export const STATIC_NAMES = ['', ...STATIC_TABLE.map(([name]) => name)]
export const STATIC_VALUES = ['', ...STATIC_TABLE.map(([, value]) => value)]

/**
 * The dynamic table (§2.3.2, §4): a FIFO of entries, newest first, bounded
 * by the sum of the entries' sizes. Ring buffers, grown as entries come.
 */
export class DynamicTable {
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

/**
 * The HPACK Huffman code (RFC 7541 §5.2, Appendix B). Strings are latin1: one
 * char per octet, so a char's low 8 bits are its symbol.
 */

/**
 * Code lengths in bits of symbols 0–255 and EOS (256), from Appendix B. The
 * code is canonical (codes of one length are consecutive, in symbol order,
 * and shorter codes come first), so the codes themselves follow from these.
 */
const CODE_LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
  28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
  5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
  6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
  24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
  21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
]

const EOS = 256

/** Bit length of each symbol's code. */
export const huffmanCodeLengths = Uint8Array.from(CODE_LENGTHS)
/** Each symbol's code, right-aligned. */
export const huffmanCodes = canonicalCodes(huffmanCodeLengths)

function canonicalCodes(lengths: Uint8Array): Uint32Array {
  const codes = new Uint32Array(lengths.length)
  const symbols = Array.from(lengths.keys()).sort((a, b) => lengths[a]! - lengths[b]! || a - b)
  let code = 0
  let length = lengths[symbols[0]!]!
  for (const [rank, symbol] of symbols.entries()) {
    if (rank > 0) {
      code = (code + 1) * 2 ** (lengths[symbol]! - length)
      length = lengths[symbol]!
    }
    codes[symbol] = code
  }
  return codes
}

// ── Decoding ────────────────────────────────────────────────────────────────
//
// A state machine reads an octet at a time. A state is an internal node of
// the code tree (there are 256 for 257 leaves; 0 is the root) or DEAD,
// reached by decoding EOS. Since the shortest code is 5 bits long, reading 4
// bits completes at most one symbol, and reading 8 at most two.
//
// The octet transitions (257 × 256) take long to compute, so a state's row
// is computed from the nibble transitions (257 × 16, computed at load) the
// first time the state is met; most rows are never needed.

const DEAD = 256

/** Nibble transition: next state in bits 0–8, the completed symbol in bits 9–16, NIBBLE_EMITS in bit 17. */
const nibbleTransitions = new Uint32Array((DEAD + 1) * 16)
const NIBBLE_EMITS = 1 << 17

/**
 * Octet transition: next state in bits 0–8, EMITS_ONE in bit 9, EMITS_TWO in
 * bit 10, the first symbol in bits 11–18, the second in bits 19–26. 0: the
 * row is not computed yet (no transition is 0: one back to the root emits).
 */
const octetTransitions = new Uint32Array((DEAD + 1) * 256)
const EMITS_ONE = 1 << 9
const EMITS_TWO = 1 << 10

function computeRow(state: number): void {
  for (let octet = 0; octet < 256; octet++) {
    const high = nibbleTransitions[state * 16 + (octet >>> 4)]!
    const low = nibbleTransitions[(high & 0x1ff) * 16 + (octet & 15)]!
    let entry = low & 0x1ff
    if (high & NIBBLE_EMITS) {
      entry |= EMITS_ONE | (((high >>> 9) & 0xff) << 11)
      if (low & NIBBLE_EMITS) entry |= EMITS_TWO | (((low >>> 9) & 0xff) << 19)
    } else if (low & NIBBLE_EMITS) {
      entry |= EMITS_ONE | (((low >>> 9) & 0xff) << 11)
    }
    octetTransitions[state * 256 + octet] = entry
  }
}

/** How a string that ends in a state ends: only the root and ≤ 7 bits of an all-ones path (EOS's prefix) are valid padding. */
const END_OK = 0
const END_PADDING_TOO_LONG = 1
const END_PADDING_NOT_ONES = 2
const END_EOS = 3
const endings = new Uint8Array(DEAD + 1).fill(END_PADDING_NOT_ONES)

{
  // children[node * 2 + bit]: an internal node, or LEAF | symbol.
  const LEAF = 0x1000
  const children = new Int32Array(DEAD * 2).fill(-1)
  let nodes = 1
  for (let symbol = 0; symbol <= EOS; symbol++) {
    const length = huffmanCodeLengths[symbol]!
    const code = huffmanCodes[symbol]!
    let node = 0
    for (let bit = length - 1; bit > 0; bit--) {
      const slot = node * 2 + ((code >>> bit) & 1)
      if (children[slot] === -1) children[slot] = nodes++
      node = children[slot]!
    }
    children[node * 2 + (code & 1)] = LEAF | symbol
  }
  if (nodes !== DEAD || children.includes(-1)) throw new Error('the Huffman code table is not a complete prefix code')

  for (let state = 0; state < DEAD; state++) {
    for (let nibble = 0; nibble < 16; nibble++) {
      let node = state
      let entry = 0
      for (let bit = 3; bit >= 0; bit--) {
        const child = children[node * 2 + ((nibble >>> bit) & 1)]!
        if (child < LEAF) {
          node = child
        } else if ((child & ~LEAF) === EOS) {
          node = DEAD
          break
        } else {
          entry = NIBBLE_EMITS | ((child & ~LEAF) << 9)
          node = 0
        }
      }
      nibbleTransitions[state * 16 + nibble] = entry | node
    }
  }
  for (let nibble = 0; nibble < 16; nibble++) nibbleTransitions[DEAD * 16 + nibble] = DEAD

  endings[DEAD] = END_EOS
  for (let node = 0, ones = 0; node < LEAF; node = children[node * 2 + 1]!, ones++) {
    endings[node] = ones <= 7 ? END_OK : END_PADDING_TOO_LONG
  }
}

const END_REASONS = ['', 'Huffman padding longer than 7 bits', 'Huffman padding that is not all ones', 'the EOS symbol inside a Huffman string']

/**
 * Decodes the Huffman string `src[start, end)` into `out` from `at`, and
 * returns where the decoded octets end. `out` must have room for
 * `huffmanDecodedRoom(end - start)` octets. On malformed input, calls `fail`
 * with what was wrong and the offset of the string in `src`.
 */
export function huffmanDecode(
  src: Uint8Array,
  start: number,
  end: number,
  out: Uint8Array,
  at: number,
  fail: (reason: string, offset: number) => never,
): number {
  let state = 0
  for (let i = start; i < end; i++) {
    const row = state * 256
    let entry = octetTransitions[row + src[i]!]!
    if (entry === 0) {
      computeRow(state)
      entry = octetTransitions[row + src[i]!]!
    }
    // A Uint8Array store keeps the low 8 bits: the symbol.
    if (entry & EMITS_ONE) {
      out[at++] = entry >>> 11
      if (entry & EMITS_TWO) out[at++] = entry >>> 19
    }
    state = entry & 0x1ff
  }
  const ending = endings[state]!
  if (ending !== END_OK) fail(END_REASONS[ending]!, start)
  return at
}

/** Room enough for what a Huffman string of `length` octets decodes to: each symbol takes at least 5 bits, so under 2 a octet. */
export function huffmanDecodedRoom(length: number): number {
  return length * 2
}

// ── Encoding ────────────────────────────────────────────────────────────────
//
// HpackEncoder sends literals raw (it says why); the tests and bench/hpack.ts
// use these to make Huffman strings and to measure what coding would cost.

/** Octets of the Huffman code of `s`. */
export function huffmanLength(s: string): number {
  let bits = 0
  for (let i = 0; i < s.length; i++) bits += huffmanCodeLengths[s.charCodeAt(i) & 0xff]!
  return (bits + 7) >>> 3
}

/** Writes the Huffman code of `s` into `out` at `offset`; returns the offset after it. */
export function huffmanEncode(s: string, out: Uint8Array, offset: number): number {
  // `pending` low bits of `bits` are not written yet (always < 8 between symbols).
  // Bits above them are stale; a Uint8Array store keeps only the low 8 bits.
  let bits = 0
  let pending = 0
  for (let i = 0; i < s.length; i++) {
    const symbol = s.charCodeAt(i) & 0xff
    let code = huffmanCodes[symbol]!
    let length = huffmanCodeLengths[symbol]!
    if (length > 24) {
      // Split so that the new bits and the pending ones fit in 32 bits.
      const high = length - 16
      bits = (bits << high) | (code >>> 16)
      pending += high
      while (pending >= 8) out[offset++] = bits >>> (pending -= 8)
      code &= 0xffff
      length = 16
    }
    bits = (bits << length) | code
    pending += length
    while (pending >= 8) out[offset++] = bits >>> (pending -= 8)
  }
  // Pad with the most significant bits of EOS, all ones.
  if (pending > 0) out[offset++] = (bits << (8 - pending)) | (0xff >>> pending)
  return offset
}

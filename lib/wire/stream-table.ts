/**
 * A connection's open streams by id: open addressing with linear probing
 * over a plain array, keyed by `id >>> 1`. Our stream ids are consecutive odd
 * numbers, so streams open at the same time land in consecutive slots and a
 * lookup rarely probes twice.
 *
 * Not a `Map`, for the reason SlotSet gives (lib/slot-set.ts): a `Map` with a
 * stream added and deleted per request is rehashed every few hundred
 * requests, and its obsolete tables keep dead streams, and everything they
 * reach, alive into the old generation.
 */
import type { WireStream } from './stream.js'

const INITIAL_CAPACITY = 16

export class StreamTable {
  #slots: (WireStream | undefined)[] = new Array<WireStream | undefined>(INITIAL_CAPACITY).fill(undefined)
  #mask = INITIAL_CAPACITY - 1
  #size = 0

  get size(): number {
    return this.#size
  }

  get(id: number): WireStream | undefined {
    const slots = this.#slots
    const mask = this.#mask
    for (let index = (id >>> 1) & mask; ; index = (index + 1) & mask) {
      const stream = slots[index]
      if (stream === undefined || stream.id === id) return stream
    }
  }

  /** Adds a stream whose id is not in the table. */
  add(stream: WireStream): void {
    // At most half full: probes stay short and there is always a free slot.
    if ((this.#size + 1) * 2 > this.#slots.length) this.#resize(this.#slots.length * 2)
    this.#place(stream)
    this.#size++
  }

  /** Removes the stream; false when it was not in the table. */
  delete(stream: WireStream): boolean {
    const slots = this.#slots
    const mask = this.#mask
    let hole = (stream.id >>> 1) & mask
    for (;;) {
      const found = slots[hole]
      if (found === undefined) return false
      if (found === stream) break
      hole = (hole + 1) & mask
    }
    slots[hole] = undefined
    this.#size--
    // Backward-shift deletion: later members of the probe run move into the
    // hole when their home slot does not lie between the hole and them, so
    // lookups never meet a gap inside a run (and no tombstones pile up).
    for (let index = (hole + 1) & mask; ; index = (index + 1) & mask) {
      const next = slots[index]
      if (next === undefined) break
      const home = (next.id >>> 1) & mask
      const stays = hole <= index ? hole < home && home <= index : hole < home || home <= index
      if (stays) continue
      slots[hole] = next
      slots[index] = undefined
      hole = index
    }
    if (this.#slots.length > INITIAL_CAPACITY && this.#size * 8 < this.#slots.length) this.#resize(this.#slots.length / 2)
    return true
  }

  /** The open streams now: a copy, so callers may open and close streams while they go through it. */
  values(): WireStream[] {
    const streams: WireStream[] = []
    for (const stream of this.#slots) if (stream !== undefined) streams.push(stream)
    return streams
  }

  #place(stream: WireStream): void {
    const slots = this.#slots
    const mask = this.#mask
    let index = (stream.id >>> 1) & mask
    while (slots[index] !== undefined) index = (index + 1) & mask
    slots[index] = stream
  }

  #resize(capacity: number): void {
    const old = this.#slots
    this.#slots = new Array<WireStream | undefined>(capacity).fill(undefined)
    this.#mask = capacity - 1
    for (const stream of old) if (stream !== undefined) this.#place(stream)
    // The old array may already be in the old generation: emptied, it keeps no stream alive.
    old.fill(undefined)
  }
}

/** A member of a SlotSet: it carries its own position, -1 when outside. */
export interface Slotted {
  slot: number
}

/**
 * An unordered set of objects that each record their position, for the
 * per-request collections of long-lived owners (a pool's exchanges, a
 * connection's streams).
 *
 * Not a `Set`: V8 rehashes a `Set` or `Map` that sees constant adds and
 * deletes every few hundred operations, and the obsolete table keeps its
 * entries and a pointer to its successor. Once the owner's table sits in
 * the old generation, each dead table keeps the next one, and the requests
 * in it, alive through every scavenge, so every request is promoted and
 * only a full GC frees it. Measured on the bench's small GETs: half the
 * client's CPU went to GC. An array whose vacated slots are cleared holds
 * nothing dead.
 */
export class SlotSet<T extends Slotted> {
  readonly #items: T[] = []

  get size(): number {
    return this.#items.length
  }

  add(item: T): void {
    item.slot = this.#items.length
    this.#items.push(item)
  }

  /** Removes the item; false when it was not a member. */
  delete(item: T): boolean {
    const items = this.#items
    const slot = item.slot
    if (slot < 0 || items[slot] !== item) return false
    const last = items.pop()!
    if (last !== item) {
      items[slot] = last
      last.slot = slot
    }
    item.slot = -1
    return true
  }

  /** The members now: a copy, so callers may change the set while they go through it. */
  values(): T[] {
    return this.#items.slice()
  }
}

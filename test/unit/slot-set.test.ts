/** The set of a pool's exchanges and of a node:http2 connection's streams (lib/slot-set.ts). */
import { describe, expect, it } from 'vitest'
import { SlotSet } from '../../lib/slot-set.js'

const item = (name: string) => ({ name, slot: -1 })

describe('SlotSet', () => {
  it('adds, deletes from any position, and knows its members', () => {
    const set = new SlotSet<ReturnType<typeof item>>()
    const [a, b, c] = [item('a'), item('b'), item('c')]
    for (const x of [a, b, c]) set.add(x)
    expect(set.delete(a)).toBe(true)
    expect(set.size).toBe(2)
    expect(set.values().map((x) => x.name).sort()).toEqual(['b', 'c'])
    // The last member moved into the freed place and still deletes.
    expect(set.delete(c)).toBe(true)
    expect(set.values()).toEqual([b])
    expect(a.slot).toBe(-1)
  })

  it('refuses what is not a member, also an item of another set in the same position', () => {
    const one = new SlotSet<ReturnType<typeof item>>()
    const other = new SlotSet<ReturnType<typeof item>>()
    const mine = item('mine')
    const theirs = item('theirs')
    one.add(mine)
    other.add(theirs)
    expect(one.delete(theirs)).toBe(false)
    expect(one.delete(mine)).toBe(true)
    expect(one.delete(mine)).toBe(false)
    expect(other.size).toBe(1)
  })

  it('values() is a copy: members may leave while the caller goes through it', () => {
    const set = new SlotSet<ReturnType<typeof item>>()
    const items = Array.from({ length: 10 }, (_, i) => item(String(i)))
    for (const x of items) set.add(x)
    const seen: string[] = []
    for (const x of set.values()) {
      seen.push(x.name)
      set.delete(x)
    }
    expect(seen.sort()).toEqual(items.map((x) => x.name).sort())
    expect(set.size).toBe(0)
  })
})

/**
 * The wire connection's table of open streams (lib/wire/stream-table.ts),
 * against a Map as the model: open addressing must find every open stream
 * and no closed one, whatever the order of closing, the collisions and the
 * resizes.
 */
import { describe, expect, it } from 'vitest'
import { StreamTable } from '../../lib/wire/stream-table.js'
import type { WireStream } from '../../lib/wire/stream.js'

const stream = (id: number) => ({ id }) as WireStream

/** A small seeded generator (mulberry32): the same sequence of operations on every run. */
function random(seed: number): () => number {
  let state = seed
  return () => {
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}

function expectSame(table: StreamTable, model: Map<number, WireStream>, probeIds: number[]) {
  expect(table.size).toBe(model.size)
  for (const id of probeIds) expect(table.get(id)).toBe(model.get(id))
  expect(table.values().map((s) => s.id).sort((a, b) => a - b)).toEqual([...model.keys()].sort((a, b) => a - b))
}

describe('StreamTable', () => {
  it('finds what was added and nothing else', () => {
    const table = new StreamTable()
    const one = stream(1)
    const three = stream(3)
    table.add(one)
    table.add(three)
    expect(table.get(1)).toBe(one)
    expect(table.get(3)).toBe(three)
    expect(table.get(5)).toBeUndefined()
    expect(table.size).toBe(2)
  })

  it('keeps colliding ids reachable when one before them in the probe run closes', () => {
    // 1, 33 and 65 share a home slot at the initial capacity of 16 (id >>> 1 is 0, 16, 32).
    const table = new StreamTable()
    const [a, b, c] = [stream(1), stream(33), stream(65)]
    for (const s of [a, b, c]) table.add(s)
    expect(table.delete(a)).toBe(true)
    expect(table.get(33)).toBe(b)
    expect(table.get(65)).toBe(c)
    expect(table.delete(a)).toBe(false)
    expect(table.get(1)).toBeUndefined()
  })

  it('keeps probe runs intact across the end of the array', () => {
    // Home slot 15 (ids 31, 63, 95) wraps to slots 0 and 1.
    const table = new StreamTable()
    const runs = [stream(31), stream(63), stream(95), stream(1)]
    for (const s of runs) table.add(s)
    expect(table.delete(runs[0]!)).toBe(true)
    for (const s of runs.slice(1)) expect(table.get(s.id)).toBe(s)
  })

  it('matches a Map over 20,000 random opens and closes, growing and shrinking', () => {
    const next = random(14)
    const table = new StreamTable()
    const model = new Map<number, WireStream>()
    let nextId = 1
    for (let step = 0; step < 20_000; step++) {
      // Phases of growth and of shrinkage, so the table resizes both ways several times.
      const growing = Math.floor(step / 2_500) % 2 === 0
      if (model.size === 0 || next() < (growing ? 0.7 : 0.3)) {
        const s = stream(nextId)
        nextId += 2
        table.add(s)
        model.set(s.id, s)
      } else {
        const ids = [...model.keys()]
        const victim = model.get(ids[Math.floor(next() * ids.length)]!)!
        expect(table.delete(victim)).toBe(true)
        model.delete(victim.id)
      }
      if (step % 97 === 0) expectSame(table, model, [nextId - 2, nextId, 1, ...[...model.keys()].slice(0, 20)])
    }
    expectSame(table, model, [...model.keys()])
  })

  it('values() is a copy: closing streams while going through it skips none', () => {
    const table = new StreamTable()
    const streams = Array.from({ length: 40 }, (_, i) => stream(2 * i + 1))
    for (const s of streams) table.add(s)
    let seen = 0
    for (const s of table.values()) {
      table.delete(s)
      seen++
    }
    expect(seen).toBe(40)
    expect(table.size).toBe(0)
  })
})

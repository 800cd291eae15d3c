/**
 * The public HPACK interoperability corpus (http2jp/hpack-test-case, in the
 * shared folder beside the repository; its README.md gives the format): the
 * header blocks that six encoders made of the same 32 stories. A story is a
 * sequence of blocks on one connection, so each gets its own decoder; a case
 * may first change SETTINGS_HEADER_TABLE_SIZE.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { HpackDecoder, HpackEncoder, HpackError } from '../../lib/wire/hpack.js'

const seed = Number(process.env.FC_SEED ?? Math.floor(Math.random() * 2 ** 31))
const params = { seed, numRuns: Number(process.env.FC_RUNS ?? 500) }

const CORPUS = fileURLToPath(new URL('../../../shared/hpack-test-case/', import.meta.url))

type Field = [name: string, value: string]

interface Case {
  wire: Buffer
  fields: Field[]
  /** SETTINGS_HEADER_TABLE_SIZE, announced and acknowledged before this block. */
  tableSize: number | undefined
}

interface Story {
  encoder: string
  name: string
  cases: Case[]
}

interface StoryFile {
  cases: { header_table_size?: number | null; wire: string; headers: Record<string, string>[] }[]
}

function readStories(): Story[] {
  const stories: Story[] = []
  const encoders = readdirSync(CORPUS, { withFileTypes: true }).filter((entry) => entry.isDirectory())
  for (const encoder of encoders.map((entry) => entry.name).sort()) {
    for (const file of readdirSync(`${CORPUS}/${encoder}`).filter((name) => name.endsWith('.json')).sort()) {
      const story = JSON.parse(readFileSync(`${CORPUS}/${encoder}/${file}`, 'utf8')) as StoryFile
      const cases = story.cases.map((c) => ({
        wire: Buffer.from(c.wire, 'hex'),
        fields: c.headers.flatMap((header) => Object.entries(header)),
        tableSize: c.header_table_size ?? undefined,
      }))
      stories.push({ encoder, name: file.replace(/\.json$/, ''), cases })
    }
  }
  return stories
}

function decode(decoder: HpackDecoder, block: Uint8Array): Field[] {
  const fields: Field[] = []
  decoder.decode(block, (name, value) => fields.push([name, value]))
  return fields
}

const stories = existsSync(CORPUS) ? readStories() : []

if (stories.length === 0) {
  it.skip(`hpack-test-case corpus: needs the stories in ${CORPUS}`, () => {})
}

describe.each([...new Set(stories.map((story) => story.encoder))])('%s', (encoder) => {
  const own = stories.filter((story) => story.encoder === encoder)

  it.each(own.map((story) => [story.name, story] as const))('decodes %s', (_, { cases }) => {
    const decoder = new HpackDecoder()
    for (const [seqno, { wire, fields, tableSize }] of cases.entries()) {
      if (tableSize !== undefined) decoder.setMaxTableSize(tableSize)
      expect(decode(decoder, wire), `case ${seqno}`).toEqual(fields)
    }
  })

  it.each(own.map((story) => [story.name, story] as const))('round-trips the header lists of %s', (_, { cases }) => {
    const encoder = new HpackEncoder()
    const decoder = new HpackDecoder()
    for (const [seqno, { fields, tableSize }] of cases.entries()) {
      if (tableSize !== undefined) {
        encoder.setMaxTableSize(tableSize)
        decoder.setMaxTableSize(tableSize)
      }
      encoder.start()
      for (const [name, value] of fields) encoder.field(name, value)
      expect(decode(decoder, encoder.finish()), `case ${seqno}`).toEqual(fields)
    }
  })
})

describe.runIf(stories.length > 0)('mutated corpus blocks', () => {
  const mutation = fc.record({
    kind: fc.constantFrom('flip', 'set', 'delete', 'insert', 'truncate'),
    at: fc.nat(),
    octet: fc.nat(255),
    length: fc.integer({ min: 1, max: 8 }),
  })
  type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never

  function mutate(block: Buffer, { kind, at, octet, length }: Mutation): Buffer {
    const i = block.length === 0 ? 0 : at % block.length
    switch (kind) {
      case 'flip':
        return block.length === 0 ? block : Buffer.concat([block.subarray(0, i), Buffer.of(block[i]! ^ (1 << (octet & 7))), block.subarray(i + 1)])
      case 'set':
        return block.length === 0 ? block : Buffer.concat([block.subarray(0, i), Buffer.of(octet), block.subarray(i + 1)])
      case 'delete':
        return Buffer.concat([block.subarray(0, i), block.subarray(i + length)])
      case 'insert':
        return Buffer.concat([block.subarray(0, i), Buffer.alloc(length, octet), block.subarray(i)])
      case 'truncate':
        return block.subarray(0, i)
    }
  }

  it('decode or throw HpackError, nothing else, and the blocks after them too', () => {
    const target = fc.record({
      story: fc.nat(stories.length - 1),
      at: fc.nat(),
      mutations: fc.array(mutation, { minLength: 1, maxLength: 4 }),
    })
    fc.assert(
      fc.property(target, ({ story, at, mutations }) => {
        const { cases } = stories[story]!
        const index = at % cases.length
        const decoder = new HpackDecoder()
        for (const [i, { wire, tableSize }] of cases.entries()) {
          if (i > index + 3) break
          if (tableSize !== undefined) decoder.setMaxTableSize(tableSize)
          const block = i === index ? mutations.reduce(mutate, wire) : wire
          try {
            decoder.decode(block, () => {})
          } catch (error) {
            expect(error).toBeInstanceOf(HpackError)
            break
          }
        }
      }),
      params,
    )
  })
})

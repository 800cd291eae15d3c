/**
 * HPACK codec speed on the public corpus (http2jp/hpack-test-case in the
 * shared folder beside the repository): ns per header block, decoding each
 * encoder's blocks and encoding the header lists, responses and requests
 * apart. A story is one connection: one decoder (or encoder) per story.
 * Last, what Huffman-coding the encoder's literals would cost and save.
 *
 *   npx tsx bench/hpack.ts [--rounds N]
 */
import { createCipheriv, randomBytes } from 'node:crypto'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { HpackDecoder, HpackEncoder } from '../lib/wire/hpack.js'
import { huffmanEncode, huffmanLength } from '../lib/wire/huffman.js'

const CORPUS = fileURLToPath(new URL('../../shared/hpack-test-case/', import.meta.url))
const roundsArg = process.argv.indexOf('--rounds')
const ROUNDS = roundsArg === -1 ? 15 : Number(process.argv[roundsArg + 1])
/** Each round runs for about this long (CPU time). */
const MEASURE_MS = 100

interface Case {
  wire: Buffer
  fields: [string, string][]
  tableSize: number | undefined
}
type Story = Case[]

if (!existsSync(CORPUS)) {
  console.error(`needs the corpus in ${CORPUS}`)
  process.exit(2)
}

const byEncoder = new Map<string, { responses: Story[]; requests: Story[] }>()
for (const encoder of readdirSync(CORPUS, { withFileTypes: true }).filter((entry) => entry.isDirectory()).map((entry) => entry.name).sort()) {
  const sets = { responses: [] as Story[], requests: [] as Story[] }
  for (const file of readdirSync(`${CORPUS}/${encoder}`).filter((name) => name.endsWith('.json')).sort()) {
    const json = JSON.parse(readFileSync(`${CORPUS}/${encoder}/${file}`, 'utf8')) as {
      cases: { header_table_size?: number | null; wire: string; headers: Record<string, string>[] }[]
    }
    const story = json.cases.map((c) => ({
      wire: Buffer.from(c.wire, 'hex'),
      fields: c.headers.flatMap((header) => Object.entries(header)),
      tableSize: c.header_table_size ?? undefined,
    }))
    ;(story[0]!.fields.some(([name]) => name === ':status') ? sets.responses : sets.requests).push(story)
  }
  byEncoder.set(encoder, sets)
}

let sink = 0
const count = (name: string, value: string) => {
  sink += name.length + value.length
}

function decodeAll(stories: Story[]): void {
  for (const story of stories) {
    const decoder = new HpackDecoder()
    for (const { wire, tableSize } of story) {
      if (tableSize !== undefined) decoder.setMaxTableSize(tableSize)
      decoder.decode(wire, count)
    }
  }
}

function encodeAll(stories: Story[]): void {
  for (const story of stories) {
    const encoder = new HpackEncoder()
    for (const { fields, tableSize } of story) {
      if (tableSize !== undefined) encoder.setMaxTableSize(tableSize)
      encoder.start()
      for (const [name, value] of fields) encoder.field(name, value)
      sink += encoder.finish().length
    }
  }
}

/** ns of CPU time this process used: other processes on a shared machine do not count. */
function cpuNow(): number {
  const { user, system } = process.cpuUsage()
  return (user + system) * 1000
}

/**
 * The best of ROUNDS rounds of CPU ns per block, each round repeating `pass`
 * for about MEASURE_MS: on a shared machine, other processes only ever make
 * a round slower (through the caches), so the best round is the truest.
 */
function nsPerBlock(blocks: number, pass: () => void): number {
  const results: number[] = []
  for (let round = 0; round < ROUNDS; round++) {
    let passes = 0
    const start = cpuNow()
    let elapsed = 0
    do {
      pass()
      passes++
      elapsed = cpuNow() - start
    } while (elapsed < MEASURE_MS * 1e6)
    results.push(elapsed / (passes * blocks))
  }
  return Math.min(...results)
}

const blocksOf = (stories: Story[]) => stories.reduce((sum, story) => sum + story.length, 0)
const fieldsOf = (stories: Story[]) => stories.reduce((sum, story) => sum + story.reduce((n, c) => n + c.fields.length, 0), 0)
const octetsOf = (stories: Story[]) => stories.reduce((sum, story) => sum + story.reduce((n, c) => n + c.wire.length, 0), 0)

console.log(`node ${process.version}; CPU time, best of ${ROUNDS} rounds of ${MEASURE_MS} ms\n`)
console.log('decode (ns per block)')
console.log('encoder                          responses  (fields, octets/block)   requests  (fields, octets/block)')
for (const [encoder, { responses, requests }] of byEncoder) {
  const r = nsPerBlock(blocksOf(responses), () => decodeAll(responses))
  const q = nsPerBlock(blocksOf(requests), () => decodeAll(requests))
  const shape = (stories: Story[]) =>
    `(${(fieldsOf(stories) / blocksOf(stories)).toFixed(1)}, ${(octetsOf(stories) / blocksOf(stories)).toFixed(0)})`.padEnd(14)
  console.log(`${encoder.padEnd(32)} ${r.toFixed(0).padStart(9)}  ${shape(responses)}          ${q.toFixed(0).padStart(8)}  ${shape(requests)}`)
}

// The brief's typical case: a response on a warm connection. :status 200 and
// six fields from the dynamic table, then what changes with every response
// (date, content length, request id) as Huffman-coded literals.
{
  const huffman = (text: string) => {
    const coded = Buffer.alloc(huffmanLength(text))
    huffmanEncode(text, coded, 0)
    return Buffer.concat([Buffer.of(0x80 | coded.length), coded])
  }
  const constant: [string, string][] = [
    ['content-type', 'application/json; charset=utf-8'],
    ['server', 'nginx/1.25.3'],
    ['vary', 'accept-encoding'],
    ['cache-control', 'no-store'],
    ['strict-transport-security', 'max-age=31536000'],
    ['x-content-type-options', 'nosniff'],
  ]
  // Literals with incremental indexing and new names: the first block fills the table.
  const first = Buffer.concat([Buffer.of(0x88), ...constant.flatMap(([name, value]) => [Buffer.of(0x40), huffman(name), huffman(value)])])
  const steady = Array.from({ length: 100 }, (_, i) =>
    Buffer.concat([
      Buffer.of(0x88),
      // Indexed: the six entries, at 62 (newest) to 67.
      Buffer.from(constant.map((_, k) => 0x80 | (62 + k))),
      // date and content-length: literals without indexing, static names 33 and 28.
      Buffer.of(0x0f, 33 - 15),
      huffman(`Tue, 02 Dec 2025 07:${String(10 + (i % 50)).padStart(2, '0')}:${String(i % 60).padStart(2, '0')} GMT`),
      Buffer.of(0x0f, 28 - 15),
      huffman(String(200 + i * 37)),
      Buffer.of(0x00),
      huffman('x-request-id'),
      huffman(`7c0e${String(i).padStart(4, '0')}-1c2b-4f6e-9a1d-5e3f2b8c9d0a`),
    ]),
  )
  const decoder = new HpackDecoder()
  decoder.decode(first, count)
  const names: string[] = []
  decoder.decode(steady[0]!, (name) => names.push(name))
  if (names.join() !== ':status,x-content-type-options,strict-transport-security,cache-control,vary,server,content-type,date,content-length,x-request-id') {
    throw new Error(`the typical response decodes to ${names.join()}`)
  }
  const ns = nsPerBlock(steady.length, () => {
    for (const block of steady) decoder.decode(block, count)
  })
  const octets = steady.reduce((sum, block) => sum + block.length, 0) / steady.length
  console.log(`\na typical response on a warm connection (10 fields, ${octets.toFixed(0)} octets): ${ns.toFixed(0)} ns`)
}

// Every encoder directory holds the same header lists; one set suffices for encoding.
const { responses, requests } = byEncoder.get('nghttp2') ?? byEncoder.values().next().value!
const sizes = (stories: Story[]) => {
  let octets = 0
  for (const story of stories) {
    const encoder = new HpackEncoder()
    for (const { fields } of story) {
      encoder.start()
      for (const [name, value] of fields) encoder.field(name, value)
      octets += encoder.finish().length
    }
  }
  return (octets / blocksOf(stories)).toFixed(1)
}
console.log('\nencode (ns per block, octets per block; the corpus encoders\' octets in the table above)')
console.log(`responses ${nsPerBlock(blocksOf(responses), () => encodeAll(responses)).toFixed(0).padStart(6)} ns  ${sizes(responses)} octets`)
console.log(`requests  ${nsPerBlock(blocksOf(requests), () => encodeAll(requests)).toFixed(0).padStart(6)} ns  ${sizes(requests)} octets`)

// The hot case the encoder is built for: one connection sending the same head with a new path each time.
const head: [string, string][] = [
  [':method', 'GET'],
  [':scheme', 'https'],
  [':authority', 'api.example.com'],
  [':path', ''],
  ['user-agent', 'drainpipe/0.1.0'],
  ['accept', 'application/json'],
  ['accept-encoding', 'gzip, deflate, br'],
  ['authorization', 'Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig'],
]
const paths = Array.from({ length: 1000 }, (_, i) => `/v1/items/${i}?fields=name,price`)
const encoder = new HpackEncoder()
let octets = 0
const repeatedHead = () => {
  octets = 0
  for (const path of paths) {
    encoder.start()
    for (const [name, value] of head) encoder.field(name, name === ':path' ? path : value)
    octets += encoder.finish().length
  }
}
const ns = nsPerBlock(paths.length, repeatedHead)
console.log(`a repeated request head, new path each time: ${ns.toFixed(0)} ns, ${(octets / paths.length).toFixed(1)} octets`)

// The encoder sends literals raw. Huffman coding would shrink them; does that
// save more CPU (octets not encrypted and sent) than it costs? The raw copy
// here is Buffer#write throughout, slower for short strings than the
// encoder's loop: the cost per octet saved comes out lower than it is.
const requestValues = requests.flatMap((story) => story.flatMap((c) => c.fields.map(([, value]) => value)))
const scratch = Buffer.allocUnsafe(64 * 1024)
let saved = 0
for (const value of requestValues) saved += Math.max(0, value.length - huffmanLength(value))
const raw = nsPerBlock(1, () => {
  for (const value of requestValues) sink += scratch.write(value, 0, 'latin1')
})
const coded = nsPerBlock(1, () => {
  for (const value of requestValues) {
    const length = huffmanLength(value)
    sink += length < value.length ? huffmanEncode(value, scratch, 0) : scratch.write(value, 0, 'latin1')
  }
})
const record = randomBytes(16 * 1024)
const key = randomBytes(16)
const iv = randomBytes(12)
const aes = nsPerBlock(record.length, () => {
  const cipher = createCipheriv('aes-128-gcm', key, iv)
  sink += cipher.update(record).length + cipher.final().length
})
const valueOctets = requestValues.reduce((sum, value) => sum + value.length, 0)
console.log(
  `\nHuffman-coding the request values would save ${((100 * saved) / valueOctets).toFixed(0)}% of their octets, ` +
    `at ${((coded - raw) / saved).toFixed(1)} ns of CPU per octet saved; AES-128-GCM costs ${aes.toFixed(2)} ns per octet sent`,
)

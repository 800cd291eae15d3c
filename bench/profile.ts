/**
 * Summarises a V8 .cpuprofile (from `npm run bench -- --profile`, written to
 * bench/out/profiles): self time by function and by file group, and the
 * inclusive (total) time of drainpipe's own functions.
 *
 *   npx tsx bench/profile.ts bench/out/profiles/001-get-drainpipe-request-/CPU.*.0.001.cpuprofile [--top 25] [--callers NAME]
 *
 * (the `.0.001` file is the main thread; the other one is tsx's loader thread)
 */
import { readFileSync } from 'node:fs'

process.stdout.on('error', () => process.exit(0))

interface Node {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  hitCount?: number
  children?: number[]
}
interface Profile {
  nodes: Node[]
  samples: number[]
  timeDeltas: number[]
  startTime: number
  endTime: number
}

const args = process.argv.slice(2)
const file = args.find((arg) => !arg.startsWith('--'))
if (!file) {
  console.error('usage: tsx bench/profile.ts FILE.cpuprofile [--top N]')
  process.exit(2)
}
const topIndex = args.indexOf('--top')
const top = topIndex === -1 ? 25 : Number(args[topIndex + 1])
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile

const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const parent = new Map<number, number>()
for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)

// Self time per node from the samples and their time deltas (µs).
const self = new Map<number, number>()
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i]!
  self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0))
}
const total = [...self.values()].reduce((a, b) => a + b, 0)

const shortUrl = (url: string) => url.replace(/^file:\/\//, '').replace(/^.*\/node_modules\//, '~/').replace(/^.*\/work\/[^/]+\//, '')
const group = (url: string, name: string): string => {
  if (name === '(garbage collector)') return 'GC'
  if (name === '(idle)' || name === '(program)') return name
  if (url === '') return '(native)'
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[1] ?? url.slice(5)}`
  if (url.includes('/node_modules/')) return shortUrl(url).split('/').slice(0, 2).join('/')
  return shortUrl(url)
}
const key = (node: Node) => `${node.callFrame.functionName || '(anonymous)'} ${shortUrl(node.callFrame.url)}:${node.callFrame.lineNumber + 1}`

const selfByFunction = new Map<string, number>()
const selfByGroup = new Map<string, number>()
for (const [id, time] of self) {
  const node = byId.get(id)!
  selfByFunction.set(key(node), (selfByFunction.get(key(node)) ?? 0) + time)
  const g = group(node.callFrame.url, node.callFrame.functionName)
  selfByGroup.set(g, (selfByGroup.get(g) ?? 0) + time)
}

// Inclusive time of drainpipe's functions: a sample counts once per function on its stack.
const inclusive = new Map<string, number>()
for (const [id, time] of self) {
  const seen = new Set<string>()
  for (let cursor: number | undefined = id; cursor !== undefined; cursor = parent.get(cursor)) {
    const node = byId.get(cursor)!
    if (!node.callFrame.url.includes('/lib/')) continue
    const name = key(node)
    if (seen.has(name)) continue
    seen.add(name)
    inclusive.set(name, (inclusive.get(name) ?? 0) + time)
  }
}

const pct = (time: number) => `${((time / total) * 100).toFixed(1).padStart(5)}%`
const print = (title: string, entries: Map<string, number>, count: number) => {
  console.log(`\n${title}`)
  for (const [name, time] of [...entries].sort((a, b) => b[1] - a[1]).slice(0, count)) console.log(`${pct(time)}  ${name}`)
}
console.log(`${file}: ${(total / 1e6).toFixed(2)} s sampled`)
print('Self time by group', selfByGroup, 20)
print('Self time by function', selfByFunction, top)
print('Inclusive time of drainpipe (lib/) functions', inclusive, top)

// --callers NAME: the stacks (up to 8 frames) through which NAME's self time is spent.
const callersIndex = args.indexOf('--callers')
if (callersIndex !== -1) {
  const wanted = args[callersIndex + 1]!
  const stacks = new Map<string, number>()
  for (const [id, time] of self) {
    const node = byId.get(id)!
    if (node.callFrame.functionName !== wanted) continue
    const frames: string[] = []
    for (let cursor = parent.get(id); cursor !== undefined && frames.length < 8; cursor = parent.get(cursor)) {
      frames.push(key(byId.get(cursor)!))
    }
    const stack = frames.join(' < ')
    stacks.set(stack, (stacks.get(stack) ?? 0) + time)
  }
  print(`Callers of ${wanted}`, stacks, 10)
}

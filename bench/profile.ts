/**
 * Summarises a V8 .cpuprofile (from `npm run bench -- --profile`, written to
 * bench/out/profiles): self time by function and by file group, and the
 * inclusive (total) time of drainpipe's own functions.
 *
 *   npx tsx bench/profile.ts bench/out/profiles/001/get-drainpipe-request-.cpuprofile [--top 25] [--callers NAME]
 *   npx tsx bench/profile.ts A.cpuprofile --ops N --vs B.cpuprofile --vs-ops M
 *
 * With --ops (the requests completed in the profiled window, printed by the
 * run) times are shown as µs per request; with --vs, side by side with a
 * second profile (e.g. raw node:http2), largest differences first.
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
const file = args.find((arg) => arg.endsWith('.cpuprofile'))
if (!file) {
  console.error('usage: tsx bench/profile.ts FILE.cpuprofile [--top N]')
  process.exit(2)
}
const topIndex = args.indexOf('--top')
const top = topIndex === -1 ? 25 : Number(args[topIndex + 1])
interface Summary {
  total: number
  selfByFunction: Map<string, number>
  selfByGroup: Map<string, number>
  inclusive: Map<string, number>
  self: Map<number, number>
  byId: Map<number, Node>
  parent: Map<number, number>
}

function summarise(path: string): Summary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as Profile

  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)

  // Self time per node from the samples and their time deltas (µs). Samples
  // under the profiler's own start/stop (profileWindow) are not the client's.
  const profilerNodes = new Set<number>()
  const underProfiler = (id: number): boolean => {
    for (let cursor: number | undefined = id; cursor !== undefined; cursor = parent.get(cursor)) {
      if (byId.get(cursor)!.callFrame.functionName === 'profileWindow') return true
    }
    return false
  }
  for (const node of profile.nodes) if (underProfiler(node.id)) profilerNodes.add(node.id)
  const self = new Map<number, number>()
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!
    if (profilerNodes.has(id)) continue
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
      if (!node.callFrame.url.includes('/lib/') && !node.callFrame.url.includes('/out/dist/')) continue
      const name = key(node)
      if (seen.has(name)) continue
      seen.add(name)
      inclusive.set(name, (inclusive.get(name) ?? 0) + time)
    }
  }

  return { total, selfByFunction, selfByGroup, inclusive, self, byId, parent }
}

const shortUrl = (url: string) => url.replace(/^file:\/\//, '').replace(/^.*\/node_modules\//, '~/').replace(/^.*\/work\/[^/]+\//, '')
const key = (node: Node) => `${node.callFrame.functionName || '(anonymous)'} ${shortUrl(node.callFrame.url)}:${node.callFrame.lineNumber + 1}`
const numberArg = (name: string) => {
  const index = args.indexOf(name)
  return index === -1 ? undefined : args[index + 1]
}
const ops = Number(numberArg('--ops') ?? 0)
const vsFile = numberArg('--vs')
const vsOps = Number(numberArg('--vs-ops') ?? 0)
const { total, selfByFunction, selfByGroup, inclusive, self, byId, parent } = summarise(file)
const other = vsFile ? summarise(vsFile) : undefined

const pct = (time: number) =>
  ops > 0 ? `${(time / ops).toFixed(1).padStart(7)} µs` : `${((time / total) * 100).toFixed(1).padStart(5)}%`
const print = (title: string, entries: Map<string, number>, count: number, versus?: Map<string, number>) => {
  console.log(`\n${title}${versus && ops > 0 && vsOps > 0 ? ' (µs per request: this profile, the --vs one, difference)' : ''}`)
  if (versus && ops > 0 && vsOps > 0) {
    const names = new Set([...entries.keys(), ...versus.keys()])
    const rows = [...names].map((name) => {
      const a = (entries.get(name) ?? 0) / ops
      const b = (versus.get(name) ?? 0) / vsOps
      return { name, a, b, d: a - b }
    })
    for (const row of rows.sort((x, y) => Math.abs(y.d) - Math.abs(x.d)).slice(0, count)) {
      console.log(`${row.a.toFixed(1).padStart(7)} ${row.b.toFixed(1).padStart(7)} ${(row.d >= 0 ? '+' : '') + row.d.toFixed(1).padStart(6)}  ${row.name}`)
    }
    return
  }
  for (const [name, time] of [...entries].sort((a, b) => b[1] - a[1]).slice(0, count)) console.log(`${pct(time)}  ${name}`)
}
console.log(`${file}: ${(total / 1e6).toFixed(2)} s sampled`)
print('Self time by group', selfByGroup, 20, other?.selfByGroup)
print('Self time by function', selfByFunction, top, other?.selfByFunction)
print('Inclusive time of drainpipe (lib/) functions', inclusive, top)

// --callers NAME: the stacks (up to 8 frames) through which NAME's self time is spent.
const callersIndex = args.indexOf('--callers')
if (callersIndex !== -1) {
  const wanted = args[callersIndex + 1]!
  const stacks = new Map<string, number>()
  for (const [id, time] of self) {
    const node = byId.get(id)!
    if ((node.callFrame.functionName || '(anonymous)') !== wanted && key(node) !== wanted) continue
    const frames: string[] = []
    for (let cursor = parent.get(id); cursor !== undefined && frames.length < 8; cursor = parent.get(cursor)) {
      frames.push(key(byId.get(cursor)!))
    }
    const stack = frames.join(' < ')
    stacks.set(stack, (stacks.get(stack) ?? 0) + time)
  }
  print(`Callers of ${wanted}`, stacks, 10)
}

/**
 * npm run simulate -- [scenario] [options]
 *
 * Runs the real drainpipe lifecycle for a fleet of clients on a virtual
 * clock, against simulated backends and DNS, and reports how a
 * maxConnectionAge, jitter and count behave: time until balanced,
 * handshakes per backend, connections per backend, requests that waited.
 * `--sweep` runs a grid and prints a Markdown table; `demo` replays the
 * demo's scene and compares with a real run's summary. The README's
 * "Choosing maxConnectionAge, jitter and count" says what it found.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { chart, duration, markdownTable, tableColumns, textReport } from './report.js'
import { scenarioNames, type ScenarioName } from './scenarios.js'
import { replayDemo, type DemoRun } from './demo.js'
import { autoMeasure, defaults, simulate, type SimulationOptions, type SimulationResult } from './simulate.js'

const usage = `Usage: npm run simulate -- [scenario] [options]

Scenarios: ${scenarioNames.join(', ')} (default scale-out)

The fleet and drainpipe's options (durations: 500ms, 5s, 30min, 1h; plain numbers are ms):
  --clients <n>           client processes (default ${defaults.clients})
  --backends <n>          backends at the start (default ${defaults.backends})
  --count <n>             connections per client (default ${defaults.count})
  --age <duration>        maxConnectionAge (default ${duration(defaults.age)})
  --jitter <percent>      maxConnectionAgeJitter as a share of the age: 10% or 0.1 (default 10%)
  --rate <n>              requests per second per client (default: enough for ~300 per backend per window)
  --arrivals <kind>       paced (default) or poisson
  --start-spread <dur>    the clients start over this span: a deploy of the fleet (default: one connection life,
                          so that recycles are spread over time; shorter: they come in waves)
  --service-time <dur>    per request (default ${duration(defaults.serviceTime)}); rate × service time is each client's load in flight
  --handshake <dur>       TCP + TLS + SETTINGS (default ${duration(defaults.handshake)})
  --dns-order <order>     shuffle (default), rotate or fixed
  --seed <n>              the random seed (default 1)
Scenario parameters:
  --scale-to <n>          scale-out: backends after it (default twice --backends)
  --restart-interval <d>  rolling-restart: between two backends (default 10s)
  --outage <dur>          recovery: how long the backend is down (default 60s)
  --dns-outage <dur>      dns-outage: how long DNS fails (default one connection life)
  --dns-failure <kind>    dns-outage: servfail (default) or timeout
Measurement:
  --window <dur>          shares over this window (default: a tenth of a connection's life, 1 s to 1 min)
  --bucket <dur>          resolution of every series (default 1s)
Runs and output:
  --sweep <name=v1,v2>    run every combination (repeatable; names: clients, backends, count, age, jitter, rate, seed, service-time) and print a table
  --out <file>            the chart (SVG) of a single run; default ${join(tmpdir(), 'drainpipe-simulation.svg')}
  --json <file>           the figures as JSON
  demo only: --quick (age 1 s), --seeds <n> (runs, the median is reported; default 21),
              --compare <summary.json> (a real run's, from npm run demo -- --json: its change times and connect times are replayed)
`

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    clients: { type: 'string' },
    backends: { type: 'string' },
    count: { type: 'string' },
    age: { type: 'string' },
    jitter: { type: 'string' },
    rate: { type: 'string' },
    arrivals: { type: 'string' },
    'start-spread': { type: 'string' },
    'service-time': { type: 'string' },
    handshake: { type: 'string' },
    'dns-order': { type: 'string' },
    seed: { type: 'string' },
    'scale-to': { type: 'string' },
    'restart-interval': { type: 'string' },
    outage: { type: 'string' },
    'dns-outage': { type: 'string' },
    'dns-failure': { type: 'string' },
    window: { type: 'string' },
    bucket: { type: 'string' },
    sweep: { type: 'string', multiple: true },
    out: { type: 'string' },
    json: { type: 'string' },
    quick: { type: 'boolean', default: false },
    seeds: { type: 'string' },
    compare: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
})

function fail(message: string): never {
  process.stderr.write(`${message}\n\n${usage}`)
  process.exit(2)
}

/** "500ms", "5s", "30min", "1h", or a number of ms. */
function parseDuration(name: string, text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|min|h)?$/.exec(text.trim())
  if (match === null) fail(`--${name} must be a duration (500ms, 5s, 30min, 1h), got ${text}`)
  const unit = { ms: 1, s: 1000, min: 60_000, h: 3_600_000 }[(match[2] ?? 'ms') as 'ms']
  return Number(match[1]) * unit
}

function parseCount(name: string, text: string, min = 1): number {
  const value = Number(text)
  if (!Number.isSafeInteger(value) || value < min) fail(`--${name} must be an integer of at least ${min}, got ${text}`)
  return value
}

function parseFraction(name: string, text: string): number {
  const value = text.endsWith('%') ? Number(text.slice(0, -1)) / 100 : Number(text)
  if (!Number.isFinite(value) || value < 0 || value > 1) fail(`--${name} must be between 0 and 100 %, got ${text}`)
  return value
}

function parseRate(text: string): number {
  const value = Number(text)
  if (!Number.isFinite(value) || value <= 0) fail(`--rate must be a positive number, got ${text}`)
  return value
}

function oneOf<T extends string>(name: string, text: string, allowed: readonly T[]): T {
  if (!allowed.includes(text as T)) fail(`--${name} must be one of ${allowed.join(', ')}, got ${text}`)
  return text as T
}

/** Option name → how to read its value, for the options a sweep may vary. */
const sweepable: Record<string, (text: string) => Partial<SimulationOptions>> = {
  clients: (text) => ({ clients: parseCount('clients', text) }),
  backends: (text) => ({ backends: parseCount('backends', text) }),
  count: (text) => ({ count: parseCount('count', text) }),
  age: (text) => ({ age: parseDuration('age', text) }),
  jitter: (text) => ({ jitter: parseFraction('jitter', text) }),
  rate: (text) => ({ rate: parseRate(text) }),
  seed: (text) => ({ seed: parseCount('seed', text, 0) }),
  'service-time': (text) => ({ serviceTime: parseDuration('service-time', text) }),
}

function baseOptions(): Partial<SimulationOptions> {
  const v = values
  const options: Partial<SimulationOptions> = {}
  const scene: SimulationOptions['scene'] = {}
  if (v.clients !== undefined) options.clients = parseCount('clients', v.clients)
  if (v.backends !== undefined) options.backends = parseCount('backends', v.backends)
  if (v.count !== undefined) options.count = parseCount('count', v.count)
  if (v.age !== undefined) options.age = parseDuration('age', v.age)
  if (v.jitter !== undefined) options.jitter = parseFraction('jitter', v.jitter)
  if (v.rate !== undefined) options.rate = parseRate(v.rate)
  if (v.arrivals !== undefined) options.arrivals = oneOf('arrivals', v.arrivals, ['paced', 'poisson'] as const)
  if (v['start-spread'] !== undefined) options.startSpread = parseDuration('start-spread', v['start-spread'])
  if (v['service-time'] !== undefined) options.serviceTime = parseDuration('service-time', v['service-time'])
  if (v.handshake !== undefined) options.handshake = parseDuration('handshake', v.handshake)
  if (v['dns-order'] !== undefined) options.dnsOrder = oneOf('dns-order', v['dns-order'], ['shuffle', 'rotate', 'fixed'] as const)
  if (v.seed !== undefined) options.seed = parseCount('seed', v.seed, 0)
  if (v.window !== undefined) options.window = parseDuration('window', v.window)
  if (v.bucket !== undefined) options.bucket = parseDuration('bucket', v.bucket)
  if (v['scale-to'] !== undefined) scene.scaleTo = parseCount('scale-to', v['scale-to'])
  if (v['restart-interval'] !== undefined) scene.restartInterval = parseDuration('restart-interval', v['restart-interval'])
  if (v.outage !== undefined) scene.outage = parseDuration('outage', v.outage)
  if (v['dns-outage'] !== undefined) scene.dnsOutage = parseDuration('dns-outage', v['dns-outage'])
  if (v['dns-failure'] !== undefined) scene.dnsFailure = oneOf('dns-failure', v['dns-failure'], ['servfail', 'timeout'] as const)
  options.scene = scene
  return options
}

/** Every combination of the sweep's values, in the order given (the last name varies fastest). */
function grid(): { varied: string[]; points: { options: Partial<SimulationOptions>; label: string }[] } {
  const dimensions = (values.sweep ?? []).map((text) => {
    const [name, list] = text.split('=', 2)
    if (name === undefined || list === undefined || sweepable[name] === undefined) {
      fail(`--sweep takes name=v1,v2,… with a name among ${Object.keys(sweepable).join(', ')}, got ${text}`)
    }
    return { name, points: list.split(',').map((item) => ({ options: sweepable[name]!(item), label: `${name}=${item}` })) }
  })
  let points = [{ options: {} as Partial<SimulationOptions>, label: '' }]
  for (const dimension of dimensions) {
    points = points.flatMap((point) =>
      dimension.points.map((value) => ({ options: { ...point.options, ...value.options }, label: `${point.label} ${value.label}`.trim() })),
    )
  }
  return { varied: dimensions.map((dimension) => dimension.name), points }
}

const progress = (label: string) => (done: number) => {
  if (process.stderr.isTTY) process.stderr.write(`\r${label} ${Math.round(done * 100)} %${done === 1 ? '\n' : ''}`)
}

const command = `npm run simulate -- ${process.argv.slice(2).join(' ')}`.trim()

async function runFleet(scenario: ScenarioName): Promise<void> {
  const base = { ...baseOptions(), scenario }
  const { varied, points } = grid()
  const results: SimulationResult[] = []
  for (const { options: point, label } of points) {
    const given = { ...base, ...point }
    const options = { ...autoMeasure({ ...defaults, ...given }), ...given }
    const result = await simulate(options, progress(label || scenario))
    results.push(result)
    if (points.length === 1) process.stdout.write(`${textReport(result)}\n`)
    else process.stderr.write(`${label}: ${duration(result.cost.wallMs)}\n`)
  }
  if (points.length > 1) {
    process.stdout.write(`${results[0]!.scenario.description}; ${results[0]!.options.clients} clients unless varied\n\n`)
    process.stdout.write(`${markdownTable(tableColumns(varied), results)}\n`)
  } else {
    const out = resolve(values.out ?? join(tmpdir(), 'drainpipe-simulation.svg'))
    await writeFile(out, chart(results[0]!, command))
    process.stdout.write(`chart: ${out}\n`)
  }
  if (values.json !== undefined) {
    await writeFile(values.json, `${JSON.stringify(results.map(({ metrics: _metrics, ...figures }) => figures), null, 2)}\n`)
  }
}

async function runDemo(): Promise<void> {
  const run = values.compare === undefined ? undefined : (JSON.parse(await readFile(values.compare, 'utf8')) as DemoRun)
  const seeds = values.seeds === undefined ? 21 : parseCount('seeds', values.seeds)
  const handshake = values.handshake === undefined ? undefined : parseDuration('handshake', values.handshake)
  const replay = await replayDemo(run ?? { quick: values.quick }, seeds, handshake)
  const first = replay.results[0]!
  const options = first.options
  const samples = options.handshakeSamples
  const connect =
    samples.length === 0 ? duration(options.handshake) : `the real run's ${samples.length} connect times (mean ${duration(samples.reduce((a, b) => a + b, 0) / samples.length)})`
  const seconds = (value: number | null) => (value === null ? 'never' : `${value.toFixed(1)} s`)
  process.stdout.write(`${first.scenario.description}${run ? `, at the real run's times (${run.events.slice(0, 4).map((event) => `${event.t} s`).join(', ')})` : ''}\n`)
  process.stdout.write(`options: count ${options.count}, maxConnectionAge ${duration(options.age)}, jitter 10 %; ${options.rate} requests/s; connect: ${connect}\n`)
  process.stdout.write(`simulated time to balance (median of ${seeds} seeds): after the scale-out ${seconds(replay.scaleOut)}, after the return ${seconds(replay.return)}\n`)
  if (run) {
    const real = run.clients.drainpipe.balancedAfter
    const versus = (sim: number | null, actual: number | null) => (sim === null || actual === null ? '' : ` (simulated ${signed(((sim - actual) / actual) * 100)} %)`)
    process.stdout.write(
      `real run (${values.compare}, ${run.clients.drainpipe.requests} requests): after the scale-out ${seconds(real.scaleOut)}${versus(replay.scaleOut, real.scaleOut)}, ` +
        `after the return ${seconds(real.return)}${versus(replay.return, real.return)}\n`,
    )
  }
  const out = resolve(values.out ?? join(tmpdir(), 'drainpipe-simulation.svg'))
  await writeFile(out, chart(first, command))
  process.stdout.write(`chart (seed 1): ${out}\n`)
}

const signed = (value: number) => `${value >= 0 ? '+' : ''}${value.toFixed(0)}`

if (values.help) {
  process.stdout.write(usage)
  process.exit(0)
}
const scenario = (positionals[0] ?? 'scale-out') as ScenarioName
if (!scenarioNames.includes(scenario)) fail(`The scenario must be one of ${scenarioNames.join(', ')}, got ${scenario}`)
if (scenario === 'demo') await runDemo()
else await runFleet(scenario)

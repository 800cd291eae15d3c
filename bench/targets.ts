/**
 * The targets drainpipe is held to, judged on the default engine with the
 * other engine's figures beside them. Every throughput target is a ratio of
 * client CPU time per request within one run (the reference's ÷ drainpipe's,
 * so > 1 means drainpipe is cheaper): CPU per request depends far less than
 * the rate on what else a shared machine was doing.
 */
import type { EngineName } from '../lib/index.js'
import { DEFAULT_ENGINE, RAW, UNDICI, ratio, rowName, type ThroughputScenario } from './common.js'
import { formatBytes, formatRatio, type Table } from './format.js'
import type { Plan } from './plan.js'
import { latencyRow, type Measurements } from './results.js'

export interface Check {
  name: string
  /** The measured figure on each engine (undefined: not measured). */
  values: Partial<Record<EngineName, number>>
  met: (value: number) => boolean
  show: (value: number | undefined) => string
  note?: string
}

/** How many times less CPU per request `client` on `engine` takes than `reference` (> 1: cheaper). */
function cheaper(measured: Measurements, scenario: ThroughputScenario, client: string, engine: EngineName, reference: string): number | undefined {
  return ratio(measured.cpu(scenario, reference), measured.cpu(scenario, rowName(client, engine)))
}

export function checks(plan: Plan, measured: Measurements): Check[] {
  const perEngine = (value: (engine: EngineName) => number | undefined) => {
    const values: Partial<Record<EngineName, number>> = {}
    for (const engine of plan.engines) {
      const figure = value(engine)
      if (figure !== undefined && Number.isFinite(figure)) values[engine] = figure
    }
    return values
  }
  const cpuCheck = (what: string, scenario: ThroughputScenario, client: string, reference: string, limit: number): Check => ({
    name: `${what} ≥ ${limit}× ${reference}`,
    values: perEngine((engine) => cheaper(measured, scenario, client, engine, reference)),
    met: (value) => value >= limit,
    show: formatRatio,
  })
  const request = 'drainpipe request()'
  const recyclesOf = (engine: EngineName) => measured.recycles.find((result) => result.client === 'drainpipe' && result.engine === engine)
  const fewest = Math.min(...plan.engines.map((engine) => recyclesOf(engine)?.recycles ?? Infinity))
  return [
    cpuCheck('request() small GET', 'get', request, RAW, 2),
    cpuCheck('request() small GET', 'get', request, UNDICI, 3),
    cpuCheck('request() small POST', 'post', request, RAW, 2),
    cpuCheck('fetch() small GET', 'get', 'drainpipe fetch()', 'undici.fetch H2', 2),
    cpuCheck('request() 10 MiB upload', 'upload', request, RAW, 1),
    cpuCheck('request() 10 MiB download', 'download', request, RAW, 1),
    {
      name: `p99 with a recycle every ${plan.latency.recycleMs} ms ÷ p99 without ≤ 1.2×`,
      values: perEngine((engine) =>
        ratio(
          measured.latency(latencyRow({ client: request, engine, recycleMs: plan.latency.recycleMs }), 'p99'),
          measured.latency(latencyRow({ client: request, engine, recycleMs: undefined }), 'p99'),
        ),
      ),
      met: (value) => value <= 1.2,
      show: formatRatio,
    },
    {
      name: 'heap growth after 10,000 recycles < 1 MB',
      values: perEngine((engine) => {
        const result = recyclesOf(engine)
        return result && result.heapAfter - result.heapBefore
      }),
      met: (value) => value < 1_000_000,
      show: formatBytes,
      ...(fewest < 10_000 ? { note: `only ${fewest} recycles in this run` } : {}),
    },
  ]
}

export function targetsTable(plan: Plan, list: Check[]): Table {
  const others = plan.engines.filter((engine) => engine !== DEFAULT_ENGINE)
  const verdict = (check: Check, value: number | undefined) => (value === undefined ? 'n/a' : check.met(value) ? 'met' : 'MISSED')
  return {
    title: 'Targets',
    head: ['target', `${DEFAULT_ENGINE} (default)`, 'result', ...others.map((engine) => `${engine} (reference)`)],
    right: [1, ...others.map((_, i) => 3 + i)],
    rows: list.map((check) => {
      const value = check.values[DEFAULT_ENGINE]
      return [
        check.note ? `${check.name} (${check.note})` : check.name,
        check.show(value),
        verdict(check, value),
        ...others.map((engine) => {
          const other = check.values[engine]
          return other === undefined ? '—' : `${check.show(other)} (${verdict(check, other).toLowerCase()})`
        }),
      ]
    }),
    notes: [
      `Throughput targets are ratios of client CPU time per request (per transfer, per call, per message) in this run, the reference's ÷ drainpipe's: above 1, drainpipe does the same work with less CPU. They are judged on the default engine (${DEFAULT_ENGINE}); the other engine's figures are for reference.`,
    ],
  }
}

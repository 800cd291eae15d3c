/**
 * What a run measured, kept by row (`drainpipe request() [wire]`), and the
 * medians the tables and the targets are made of.
 */
import {
  median,
  rowName,
  type IdleOriginsResult,
  type LatencyResult,
  type RecyclesResult,
  type Result,
  type ThroughputResult,
  type ThroughputScenario,
} from './common.js'

export class Measurements {
  readonly #throughput = new Map<string, ThroughputResult[]>()
  /** h2load's rates, per scenario. */
  readonly native = new Map<ThroughputScenario, number[]>()
  readonly #latency = new Map<string, LatencyResult[]>()
  readonly recycles: RecyclesResult[] = []
  readonly idle: IdleOriginsResult[] = []

  add(result: Result): void {
    switch (result.kind) {
      case 'throughput':
        push(this.#throughput, `${result.scenario} ${rowName(result.client, result.engine)}`, result)
        return
      case 'latency':
        push(this.#latency, latencyRow(result), result)
        return
      case 'recycles':
        this.recycles.push(result)
        return
      case 'idle-origins':
        this.idle.push(result)
    }
  }

  addNative(scenario: ThroughputScenario, value: number): void {
    this.native.set(scenario, [...(this.native.get(scenario) ?? []), value])
  }

  throughput(scenario: ThroughputScenario, row: string): ThroughputResult[] {
    return this.#throughput.get(`${scenario} ${row}`) ?? []
  }

  hasThroughput(scenario: ThroughputScenario): boolean {
    return [...this.#throughput.keys()].some((key) => key.startsWith(`${scenario} `)) || this.native.has(scenario)
  }

  /** Median rate (req/s or MiB/s). */
  rate(scenario: ThroughputScenario, row: string): number | undefined {
    return medianOf(this.throughput(scenario, row).map((result) => result.value))
  }

  /** Median client CPU per request or transfer (µs). */
  cpu(scenario: ThroughputScenario, row: string): number | undefined {
    return medianOf(this.throughput(scenario, row).map((result) => result.cpuUsPerOp))
  }

  /** Latency runs by row, in the order first measured. */
  latencyRows(): [string, LatencyResult[]][] {
    return [...this.#latency]
  }

  latency(row: string, field: 'p50' | 'p99' | 'p999' | 'max'): number | undefined {
    return medianOf((this.#latency.get(row) ?? []).map((result) => result[field]))
  }
}

/** A latency row's name: the client, its engine, and the recycling interval if any. */
export function latencyRow(result: Pick<LatencyResult, 'client' | 'engine' | 'recycleMs'>): string {
  return `${rowName(result.client, result.engine)}${result.recycleMs ? `, recycle every ${result.recycleMs} ms` : ''}`
}

function push<T>(map: Map<string, T[]>, key: string, value: T): void {
  const list = map.get(key)
  if (list) list.push(value)
  else map.set(key, [value])
}

function medianOf(values: number[]): number | undefined {
  return values.length ? median(values) : undefined
}

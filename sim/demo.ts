/**
 * The demo replayed: the scene of `npm run demo` (one client, count 6,
 * 3 → 6 backends, one leaving and coming back) on the simulator, with what a
 * real run's summary (`--json`) measured that the simulation cannot know:
 * when the changes happened and how long each connect took. Its times to
 * balance are compared with the real run's.
 */
import { demoOptions, simulate, type SimulationResult } from './simulate.js'

/** What `npm run demo -- --json` writes, as far as the replay reads it. */
export interface DemoRun {
  quick: boolean
  age: number
  count: number
  /** Seconds since the start: scale-out, leaving DNS, stopping, back (then the demo's later scenes, which the replay leaves out). */
  events: { t: number; label: string }[]
  clients: {
    drainpipe: {
      requests: number
      /** Seconds from a change until balanced, or null. */
      balancedAfter: { scaleOut: number | null; return: number | null }
      connect?: { mean: number; durations?: number[] }
    }
  }
}

export interface Replay {
  /** Medians over the seeds (seconds; null when most runs never balanced). */
  scaleOut: number | null
  return: number | null
  results: SimulationResult[]
}

/**
 * Runs the demo's scene once per seed. With a real run: at its change times,
 * with handshakes drawn from its connect times (unless `handshake` is
 * given); without: at the plan's times, with `handshake` ms connects.
 */
export async function replayDemo(run: DemoRun | { quick: boolean }, seeds: number, handshake?: number): Promise<Replay> {
  const real = 'events' in run ? run : undefined
  const times = real?.events.slice(0, 4).map((event) => event.t * 1000)
  const measured = handshake === undefined ? real?.clients.drainpipe.connect?.durations : undefined
  const options = demoOptions({
    quick: run.quick,
    ...(real ? { count: real.count } : {}),
    ...(handshake === undefined ? {} : { handshake }),
    ...(measured === undefined ? {} : { handshakeSamples: measured }),
    ...(times?.length === 4 ? { times: { scaleOut: times[0]!, leave: times[1]!, stop: times[2]!, back: times[3]! } } : {}),
  })
  const results: SimulationResult[] = []
  for (let seed = 1; seed <= seeds; seed++) results.push(await simulate({ ...options, seed }))
  const median = (which: 0 | 1): number | null => {
    // A run that never balanced counts as the slowest.
    const values = results.map((result) => result.changes[which]!.balancedAfter ?? Number.POSITIVE_INFINITY).sort((a, b) => a - b)
    const middle = values[Math.floor(values.length / 2)]!
    return Number.isFinite(middle) ? middle / 1000 : null
  }
  return { scaleOut: median(0), return: median(1), results }
}

/**
 * h2load (Debian `nghttp2-client`): the native client, to show how far the
 * server and the machine go when no JavaScript is involved. Pinned to the
 * client core, same server, same TLS, same paths and concurrency.
 */
import { spawn } from 'node:child_process'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { LARGE_SIZE, PATHS, type ThroughputScenario } from './common.js'
import { pinned, which } from './nghttpd.js'

export function h2loadVersion(): string | undefined {
  const binary = which('h2load')
  return binary === undefined ? undefined : spawnSync(binary, ['--version'], { encoding: 'utf8' }).stdout.trim()
}

export interface H2loadRun {
  scenario: ThroughputScenario
  /** req/s, or MiB/s for 10 MiB transfers. */
  value: number
  failed: number
}

/**
 * Runs h2load for one scenario: one connection, 100 streams for small
 * requests, 1 for 10 MiB transfers; measured for `durationMs` after a
 * warm-up. Undefined when h2load is not installed; throws when it fails.
 */
export async function h2load(
  scenario: ThroughputScenario,
  origin: string,
  docroot: string,
  warmupMs: number,
  durationMs: number,
  cpu: number | undefined,
): Promise<H2loadRun | undefined> {
  const binary = which('h2load')
  if (binary === undefined) return undefined
  const large = scenario === 'upload' || scenario === 'download'
  // h2load's durations are integers with a unit (1500ms), never fractions.
  const args = ['-c', '1', '-m', large ? '1' : '100', '-D', `${Math.max(100, Math.round(durationMs))}ms`]
  if (warmupMs > 0) args.push(`--warm-up-time=${Math.round(warmupMs)}ms`)
  if (scenario === 'post') args.push('-d', path.join(docroot, 'post.json'))
  if (scenario === 'upload') args.push('-d', path.join(docroot, PATHS.large.slice(1)))
  args.push(`${origin}${scenario === 'download' ? PATHS.large : PATHS.small}`)
  const [command, argv] = pinned(cpu, binary, args)
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
    let text = ''
    child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()))
    child.on('error', reject)
    child.on('close', () => resolve(text))
  })
  const rate = /finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(output)
  const failed = /requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, (\d+) failed/.exec(output)
  if (!rate) throw new Error(`h2load ${scenario}: could not parse its output: ${output.trim().slice(0, 500)}`)
  const perSecond = Number(rate[1])
  return { scenario, value: large ? (perSecond * LARGE_SIZE) / 2 ** 20 : perSecond, failed: Number(failed?.[1] ?? 0) }
}

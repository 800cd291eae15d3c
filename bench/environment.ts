/**
 * What a run was made on: the commit and state of lib/, the machine, Node
 * and the peers' versions, and how busy the machine was.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { median } from './common.js'
import { formatBytes } from './format.js'
import { repoRoot } from './nghttpd.js'
import type { Plan } from './plan.js'

export interface Source {
  head: string
  /** The last commit that changed lib/. */
  lib: string
  libDirty: boolean
}

/** The lib/ measured is the one compiled (or loaded) at the start: read its commit then, not at the end. */
export function sourceState(): Source {
  const git = (args: string[]) => {
    try {
      return execFileSync('git', args, { cwd: repoRoot, encoding: 'utf8' }).trim()
    } catch {
      return '?'
    }
  }
  return {
    head: git(['rev-parse', '--short', 'HEAD']),
    lib: git(['log', '-1', '--format=%h', '--', 'lib']),
    libDirty: git(['status', '--porcelain', '--', 'lib']) !== '',
  }
}

export interface RunFacts {
  source: Source
  /** Whether the children ran lib/ as compiled by tsc. */
  built: boolean
  server: string
  h2load: string | undefined
  clientCpu: number
  loadBefore: number
  loadAfter: number
  /** Cores' worth of CPU other processes used during each measurement kept. */
  interference: number[]
  /** Measurements repeated because others used more than `disturbed` cores. */
  repeated: number
  disturbed: number
  elapsedS: number
}

/** The environment section: one Markdown list item per line. */
export function environment(plan: Plan, facts: RunFacts): string[] {
  const { source } = facts
  const cpus = os.cpus()
  const busy = median(facts.interference)
  return [
    `- Date: ${new Date().toISOString()}`,
    `- Machine: ${cpus[0]?.model ?? '?'} × ${cpus.length} (${os.availableParallelism()} usable), ${formatBytes(os.totalmem())} RAM, ${os.type()} ${os.release()} ${os.arch()}`,
    `- Node ${process.version}; undici ${version('undici')}, got ${version('got')}, http2-wrapper ${version('http2-wrapper')}, hdr-histogram-js ${version('hdr-histogram-js')}, @grpc/grpc-js ${version('@grpc/grpc-js')}, @connectrpc/connect-node ${version('@connectrpc/connect-node')}`,
    `- drainpipe at ${source.head} (last change to lib/: ${source.lib})${source.libDirty ? ' with uncommitted changes in lib/' : ''}, ${facts.built ? "lib/ compiled by tsc with the project's options, as published" : 'lib/ loaded through tsx'}; engines measured: ${plan.engines.join(', ')}`,
    `- Server: ${facts.server}; native client: ${facts.h2load ?? 'h2load not installed'}, pinned to CPU ${facts.clientCpu}`,
    `- Mode: ${plan.quick ? 'quick' : 'full'}, ${plan.runs} run(s) per figure, median reported; small requests ${plan.small.warmupMs} ms warm-up + ${plan.small.durationMs} ms measured, 10 MiB ${plan.large.warmupMs} + ${plan.large.durationMs} ms, latency ${plan.latency.warmupMs} + ${plan.latency.durationMs} ms`,
    `- Load average (1 min): ${facts.loadBefore.toFixed(2)} before, ${facts.loadAfter.toFixed(2)} after; other processes used a median of ${busy.toFixed(2)} cores (max ${Math.max(0, ...facts.interference).toFixed(2)}) during the measurements kept${facts.repeated ? `; ${facts.repeated} measurement(s) were repeated because others used more than ${facts.disturbed} cores` : ''}${busy > 0.15 ? ' — the machine was busy with other work; expect noise' : ''}; took ${facts.elapsedS.toFixed(0)} s`,
  ]
}

function version(name: string): string {
  try {
    return (JSON.parse(readFileSync(path.join(repoRoot, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version
  } catch {
    return '?'
  }
}

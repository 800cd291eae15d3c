/**
 * Starts one measuring child (`worker.ts`) and reads its result line. Used
 * by run.ts for every measurement, and by the leak test for the heap over
 * recycles, so both take that figure the same way.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { RESULT_MARKER, type Result, type Target, type Task } from './common.js'
import { pinned } from './nghttpd.js'

export interface ChildOptions {
  target: Target
  tasks: Task[]
  /** The compiled worker (bench/out/build); undefined: bench/worker.ts through tsx. */
  built?: string | undefined
  /** Pin the child to this CPU (`taskset`). */
  cpu?: number | undefined
  /** Killed after this long (ms): a hung client must not hang the caller. */
  timeoutMs: number
  cwd?: string
}

export interface ChildRun {
  results: Result[]
  /** The child's own CPU time (ms): the interference meter subtracts it. */
  cpuMs: number
  /** Why there is no (complete) result: the exit code or the timeout, in words; undefined when the child exited 0. */
  failure: string | undefined
}

const workerSource = fileURLToPath(new URL('./worker.ts', import.meta.url))

export function runChild(options: ChildOptions): Promise<ChildRun> {
  const entry = options.built ? [options.built] : ['--import', 'tsx', workerSource]
  const [command, args] = pinned(options.cpu, process.execPath, [...entry, JSON.stringify({ target: options.target, tasks: options.tasks })])
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: options.cwd, stdio: ['ignore', 'pipe', 'inherit'] })
    let stdout = ''
    let timedOut = false
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGKILL')
    }, options.timeoutMs)
    child.on('close', (code) => {
      clearTimeout(timer)
      const line = stdout.split('\n').find((text) => text.startsWith(RESULT_MARKER))
      const { results, cpuMs } = line ? (JSON.parse(line.slice(RESULT_MARKER.length)) as { results: Result[]; cpuMs: number }) : { results: [], cpuMs: 0 }
      const failure = timedOut ? `no result within ${options.timeoutMs} ms (hang?); killed` : code !== 0 ? `the child exited with ${code}` : undefined
      resolve({ results, cpuMs, failure })
    })
  })
}

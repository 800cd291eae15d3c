/**
 * One measuring child, started by run.ts pinned to the client core:
 *
 *   taskset -c 1 node [--expose-gc] [--cpu-prof] --import tsx bench/worker.ts '<json>'
 *
 * where the JSON is `{ target, tasks }`. Runs the tasks in order and prints
 * their results (and the child's CPU time) on one line after RESULT_MARKER. A task that throws is
 * reported as an error and the child exits 1.
 */
import { RESULT_MARKER, type Result, type Target, type Task } from './common.js'
import { idleOrigins, recycles } from './scenarios/memory.js'
import { latency } from './scenarios/latency.js'
import { throughput } from './scenarios/throughput.js'

async function runTask(task: Task, target: Target): Promise<Result> {
  switch (task.kind) {
    case 'throughput':
      return throughput(task, target)
    case 'latency':
      return latency(task, target)
    case 'recycles':
      return recycles(task, target)
    case 'idle-origins':
      return idleOrigins(task, target)
  }
}

const { target, tasks } = JSON.parse(process.argv[2] ?? '{}') as { target: Target; tasks: Task[] }
const results: Result[] = []
let failed = false
for (const task of tasks) {
  try {
    results.push(await runTask(task, target))
  } catch (error) {
    failed = true
    console.error(`bench worker: ${JSON.stringify(task)} failed:`, error)
    break
  }
}
const cpu = process.cpuUsage()
process.stdout.write(`${RESULT_MARKER}${JSON.stringify({ results, cpuMs: (cpu.user + cpu.system) / 1000 })}\n`)
// Lingering sockets or timers must not keep a finished child alive.
process.exit(failed ? 1 : 0)

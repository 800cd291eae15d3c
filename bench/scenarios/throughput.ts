/**
 * Closed loop: `concurrency` workers each send a request as soon as their
 * previous one has finished. After a warm-up, completions are counted for
 * a fixed window; requests still in flight when it ends are awaited but not
 * counted.
 */
import { readFileSync } from 'node:fs'
import { makeClient } from '../clients.js'
import { profileWindow } from '../profiler.js'
import { LARGE_SIZE, PATHS, POST_BODY, rowName, sleep, type Target, type Task, type ThroughputResult } from '../common.js'

/** Established TCP connections from this process's side to the server's port (from /proc/net/tcp*). */
export function connectionsTo(port: number): number {
  let count = 0
  const hexPort = `:${port.toString(16).toUpperCase().padStart(4, '0')}`
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/)
      // remote address ends with the server port, state 01 = ESTABLISHED
      if (fields.length > 3 && fields[2]!.endsWith(hexPort) && fields[3] === '01') count++
    }
  }
  return count
}

export async function throughput(task: Extract<Task, { kind: 'throughput' }>, target: Target): Promise<ThroughputResult> {
  const client = await makeClient(task.client, target, { engine: task.engine })
  const { scenario } = task
  const large = scenario === 'upload' || scenario === 'download'
  const method = scenario === 'post' || scenario === 'upload' ? 'POST' : 'GET'
  const path = scenario === 'download' ? PATHS.large : PATHS.small
  const body =
    scenario === 'post'
      ? Buffer.from(POST_BODY)
      : scenario === 'upload'
        ? Buffer.alloc(LARGE_SIZE, 7)
        : undefined
  // Download counts chunks; the upload's answer is the small file, read as text.
  const readLarge = scenario === 'download'

  let completed = 0
  let lastCompletionAt = 0
  let errors = 0
  let firstError: string | undefined
  let stop = false
  const worker = async () => {
    while (!stop) {
      try {
        await client.send(method, path, body, readLarge)
        completed++
        lastCompletionAt = performance.now()
      } catch (error) {
        errors++
        firstError ??= String((error as Error)?.stack ?? error)
        if (errors > 100) {
          stop = true
          return
        }
      }
    }
  }
  // The window starts and ends on a completion, so a few 10 MiB transfers
  // still give an exact rate; it lasts at least durationMs and `minimum`
  // completions.
  const minimum = large ? 3 : 100
  const nextCompletion = async (after: number) => {
    while (completed <= after && !stop) await sleep(1)
  }
  // One request first, so every client starts with its connection up.
  await client.send(method, path, body, readLarge)
  const workers = Array.from({ length: task.concurrency }, worker)
  await sleep(task.warmupMs)
  await nextCompletion(completed)
  const profiler = await profileWindow(task.profileDir, `${task.scenario}-${rowName(task.client, task.engine)}`)
  const startCount = completed
  const started = lastCompletionAt
  const cpuStart = process.cpuUsage()
  await sleep(task.durationMs)
  await nextCompletion(startCount + minimum - 1)
  const endCount = completed
  const elapsedMs = lastCompletionAt - started
  const cpu = process.cpuUsage(cpuStart)
  await profiler.stop()
  const connections = connectionsTo(target.port)
  stop = true
  await Promise.race([Promise.all(workers), sleep(30_000)])
  await Promise.race([client.close(), sleep(5_000)])
  const done = endCount - startCount
  const perSecond = (done * 1000) / elapsedMs
  return {
    kind: 'throughput',
    client: task.client,
    engine: task.engine,
    scenario,
    value: large ? (perSecond * LARGE_SIZE) / 2 ** 20 : perSecond,
    completed: done,
    cpuUsPerOp: (cpu.user + cpu.system) / Math.max(1, done),
    elapsedMs,
    connections,
    errors,
    ...(firstError === undefined ? {} : { firstError }),
  }
}

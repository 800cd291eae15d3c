/**
 * Memory after forced full GCs: the one reading behind every heap figure
 * (the bench's memory scenarios, the leak test through them, the soak).
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

let gc: (() => void) | undefined

/**
 * V8's `gc()`. Without `--expose-gc` on the command line, the flag is set at
 * run time and `gc` taken from a fresh context (the flag only exposes it to
 * contexts made afterwards), so no caller has to start node specially.
 */
function fullGc(): () => void {
  if (gc === undefined) {
    setFlagsFromString('--expose-gc')
    gc = runInNewContext('gc') as () => void
  }
  return gc
}

/**
 * `process.memoryUsage()` after six full GCs 25 ms apart: the pauses let
 * sockets, timers and weak callbacks released by one collection finish
 * closing before the next, so what remains is what is really held.
 */
export async function settledMemory(): Promise<NodeJS.MemoryUsage> {
  const collect = fullGc()
  for (let i = 0; i < 6; i++) {
    collect()
    await sleep(25)
  }
  return process.memoryUsage()
}

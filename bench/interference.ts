/**
 * How much CPU other processes took while a measurement ran. The machine
 * this runs on may be shared (CI neighbours, other people's test runs);
 * a measurement during which others took a noticeable share of the two
 * cores is repeated (full mode) and the least disturbed attempt is kept.
 *
 * From /proc: busy time of every CPU, minus the CPU time of the measuring
 * child, the server and this orchestrator. Linux only; elsewhere it reports 0.
 */
import { readFileSync } from 'node:fs'

const TICK_MS = 10 // USER_HZ is 100 on every Linux this runs on

function busyMs(): number {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!
    const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number)
    return (user! + nice! + system! + irq! + softirq! + steal!) * TICK_MS
  } catch {
    return 0
  }
}

function processMs(pid: number | undefined): number {
  if (pid === undefined) return 0
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS
  } catch {
    return 0
  }
}

export interface Meter {
  /** Cores' worth of CPU (0…2 on this machine) other processes used since start. */
  stop(childCpuMs: number): { foreignCores: number; wallMs: number }
}

export function startMeter(serverPid: number | undefined): Meter {
  const wall = performance.now()
  const busy = busyMs()
  const server = processMs(serverPid)
  const self = process.cpuUsage()
  return {
    stop(childCpuMs) {
      const wallMs = performance.now() - wall
      const ours = childCpuMs + (processMs(serverPid) - server) + (() => {
        const used = process.cpuUsage(self)
        return (used.user + used.system) / 1000
      })()
      const foreign = Math.max(0, busyMs() - busy - ours)
      return { foreignCores: wallMs > 0 ? foreign / wallMs : 0, wallMs }
    },
  }
}

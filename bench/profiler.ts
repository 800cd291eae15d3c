/**
 * CPU profile of the measurement window only (not start-up, warm-up or
 * shutdown), through the inspector of the measuring child. Enabled by
 * `npm run bench -- --profile`, which passes a directory in the task.
 */
import { writeFileSync, mkdirSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import path from 'node:path'

export interface WindowProfile {
  stop(): Promise<void>
}

export async function profileWindow(dir: string | undefined, name: string): Promise<WindowProfile> {
  if (dir === undefined) return { stop: async () => {} }
  const session = new Session()
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.setSamplingInterval', { interval: 100 })
  await session.post('Profiler.start')
  return {
    async stop() {
      const { profile } = await session.post('Profiler.stop')
      session.disconnect()
      mkdirSync(dir, { recursive: true })
      writeFileSync(path.join(dir, `${name.replace(/[^a-z0-9.]+/gi, '-')}.cpuprofile`), JSON.stringify(profile))
    },
  }
}

import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('..', import.meta.url))

describe('examples/grpc/client.ts', () => {
  it('runs as written: unary, server streaming, and no failed call across connection ages', async () => {
    // What `npx tsx examples/grpc/client.ts` runs, without npx's lookup.
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(process.execPath, ['--import', 'tsx', 'examples/grpc/client.ts'], { cwd: root, timeout: 50_000 }, (_error, stdout, stderr) =>
        resolve({ code: child.exitCode, stdout, stderr }),
      )
    })
    expect(stderr).toBe('')
    expect(code).toBe(0)
    expect(stdout).toContain('unary: Hello, drainpipe!')
    expect(stdout).toContain('server streaming: Hello #1, stream! | Hello #2, stream! | Hello #3, stream!')
    const calls = /calls: (\d+) ok, (\d+) failed/.exec(stdout)
    expect(calls, stdout).not.toBeNull()
    expect(Number(calls![1])).toBeGreaterThan(0)
    expect(Number(calls![2])).toBe(0)
    const connections = Number(/connections used: (\d+)/.exec(stdout)?.[1])
    expect(connections).toBeGreaterThanOrEqual(2)
  }, 60_000)
})

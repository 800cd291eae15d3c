/**
 * `npm run demo -- --quick`, end to end, as a reader would run it: a child
 * process with tsx, nothing but loopback. Checks the summary it writes: no
 * failed request through drainpipe outside the scene where a backend fails
 * every request, drainpipe balanced (max/min share ≤ 1.2) within 1.5
 * connection ages of each change, plus the 1 s window the balance is
 * measured on; less than the even share to the backend that became 25×
 * slower; the failing backend ejected, with ≤ 0.5 % failed from 2 s on.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import type { DemoSummary } from '../examples/demo/run.js'

const root = fileURLToPath(new URL('..', import.meta.url))
let dir: string | undefined

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('npm run demo -- --quick', () => {
  it('runs end to end: balanced within 1.5 × age after the scale-out and the return, the slow backend avoided, the failing one ejected', async () => {
    dir = await mkdtemp(join(tmpdir(), 'drainpipe-demo-'))
    const chart = join(dir, 'chart.svg')
    const json = join(dir, 'summary.json')
    const child = spawn(process.execPath, [join(root, 'node_modules/tsx/dist/cli.mjs'), 'examples/demo.ts', '--quick', '--no-live', '--out', chart, '--json', json], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
    const killer = setTimeout(() => child.kill('SIGKILL'), 85_000)
    const [code] = (await once(child, 'exit')) as [number | null]
    clearTimeout(killer)

    const context = `demo exit code ${code}, output:\n${output}`
    const written = await readFile(json, 'utf8').catch(() => undefined)
    expect(written, `no summary written; ${context}`).toBeDefined()
    const summary = JSON.parse(written!) as DemoSummary
    const drainpipe = summary.clients.drainpipe
    expect(drainpipe.failedOutsideScene, context).toBe(0)
    expect(drainpipe.requests, context).toBeGreaterThan(1000)
    const limit = (1.5 * summary.age + summary.window) / 1000
    expect(drainpipe.balancedAfter.scaleOut, context).not.toBeNull()
    expect(drainpipe.balancedAfter.scaleOut!, context).toBeLessThanOrEqual(limit)
    expect(drainpipe.balancedAfter.return, context).not.toBeNull()
    expect(drainpipe.balancedAfter.return!, context).toBeLessThanOrEqual(limit)
    // Every backend took part, through drainpipe.
    for (const [backend, requests] of Object.entries(drainpipe.perBackend)) expect(requests, `${backend}\n${context}`).toBeGreaterThan(0)
    // The slow backend got less than its even share; the failing one was ejected and, from 2 s on, cost ≤ 0.5 % of the requests.
    expect(drainpipe.slow.share, context).toBeLessThan(1 / 6)
    expect(summary.ejections, context).toBeGreaterThanOrEqual(1)
    expect(drainpipe.failing.after2s.requests, context).toBeGreaterThan(500)
    expect(drainpipe.failing.after2s.failed, context).toBeLessThanOrEqual(0.005 * drainpipe.failing.after2s.requests)
    // The comparison ran too (its result is what it is: undici keeps its one connection, on the backend that misbehaves).
    const undici = summary.clients.undici
    expect(undici.requests, context).toBeGreaterThan(1000)
    expect(undici.slow.share, context).toBe(1)
    expect(undici.failing.failed, context).toBeGreaterThan(0)
    expect(await readFile(chart, 'utf8'), context).toMatch(/^<svg [^>]*>[\s\S]*<\/svg>\n$/)
    expect(output, context).toContain(`chart: ${chart}`)
    // Piped, the output has the live view's phase labels, in order, and no unexplained '∞'.
    const phases = [...output.matchAll(/^drainpipe demo +\d+ s \/ \d+ s {3}(.+)$/gm)].map((match) => match[1]!.replace(/ (at|since) [\d.]+ s$/, ''))
    expect(phases, context).toEqual([
      '3 backends in DNS',
      'scaled out to 6 backends',
      '127.0.0.4 left DNS',
      '127.0.0.4 stopped (GOAWAY, close)',
      '127.0.0.4 back in DNS',
      '127.0.0.2 answers in 50 ms instead of 2 ms',
      '127.0.0.2 answers 503 to every request',
      '127.0.0.2 answers again',
    ])
    expect(output, context).not.toContain('∞')
    expect(code, context).toBe(0)
  }, 90_000)
})

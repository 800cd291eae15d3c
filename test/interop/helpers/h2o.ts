/**
 * h2o (Debian `h2o`) terminating TLS and HTTP/2 in front of an HTTP/1.1
 * upstream (`proxy.reverse.url`), run the way h2o restarts gracefully: under
 * its bundled start_server (what `h2o -m master` runs), which holds the
 * listening socket. SIGHUP to start_server starts a new h2o worker on that
 * socket and sends the old one SIGTERM; the old worker sends GOAWAY on its
 * connections, finishes their streams and exits once they are closed.
 *
 * start_server runs with `--interval=0`: the old worker is told to go as
 * soon as the new one is forked (connections wait in the socket's backlog
 * meanwhile), not a second later.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { accepts, freePort, ready, start, startOnFreePort, stop, until, type Child, type Failure } from '../../helpers/processes.js'

export const H2O_BINARY = '/usr/bin/h2o'
const START_SERVER = '/usr/share/h2o/start_server'

const fixture = (name: string) => fileURLToPath(new URL(`../../fixtures/${name}`, import.meta.url))

export interface H2o {
  readonly host: string
  readonly port: number
  /** Graceful restarts done so far. */
  readonly restarts: number
  /** SIGHUP to start_server; resolves once the new worker is its current one. */
  restart(): Promise<void>
  close(): Promise<void>
}

function config(options: { host: string; port: number; upstream: { host: string; port: number } }): string {
  // h2o drops root for `user`, and refuses to run as root without it.
  const user = process.getuid?.() === 0 ? 'user: nobody\n' : ''
  return `${user}listen:
  host: ${options.host}
  port: ${options.port}
  ssl:
    certificate-file: ${fixture('api.test.crt')}
    key-file: ${fixture('api.test.key')}
    # No OCSP stapling: nothing to fetch for the test CA, and no helper process per worker.
    ocsp-update-interval: 0
hosts:
  api.test:
    paths:
      /:
        proxy.reverse.url: http://${options.upstream.host}:${options.upstream.port}/
`
}

/** start_server's status file: one `generation:pid` line per live worker. */
async function workers(path: string): Promise<{ generation: number; pid: number }[]> {
  const text = await readFile(path, 'utf8').catch(() => '')
  return text
    .split('\n')
    .filter((entry) => entry.includes(':'))
    .map((entry) => {
      const [generation, pid] = entry.split(':').map(Number)
      return { generation: generation!, pid: pid! }
    })
}

export async function startH2o(options: { host: string; upstream: { host: string; port: number } }): Promise<H2o> {
  const dir = await mkdtemp(join(tmpdir(), 'drainpipe-h2o-'))
  const configPath = join(dir, 'h2o.conf')
  const status = join(dir, 'status')
  const launch = async (port: number): Promise<Child | Failure> => {
    await writeFile(configPath, config({ ...options, port }))
    // start_server would restart a worker that rejects its configuration forever: check it first.
    const check = start(H2O_BINARY, ['-t', '-c', configPath])
    await check.exited()
    if (check.process.exitCode !== 0) throw new Error(`h2o rejected its configuration: ${check.output()}`)
    const candidate = start(START_SERVER, [`--port=${options.host}:${port}`, `--status-file=${status}`, '--interval=0', '--', H2O_BINARY, '-c', configPath])
    const serving = async () => (await workers(status)).length > 0 && (await accepts(options.host, port))
    if (await ready(candidate, serving, 10_000, 20)) return candidate
    await stop(candidate, 'SIGKILL')
    return { reason: candidate.output(), portTaken: /Address already in use/i.test(candidate.output()) }
  }
  const started = await startOnFreePort('h2o', 3, () => freePort(options.host), launch).catch(async (error: unknown) => {
    await rm(dir, { recursive: true, force: true })
    throw error
  })
  const { child, port } = started
  let restarts = 0
  let closed: Promise<void> | undefined
  return {
    host: options.host,
    port,
    get restarts() {
      return restarts
    },
    async restart() {
      const newest = Math.max(...(await workers(status)).map((worker) => worker.generation))
      child.process.kill('SIGHUP')
      await until(async () => (await workers(status)).some((worker) => worker.generation > newest), 'a new h2o worker', 10_000, 20)
      restarts++
    },
    close() {
      closed ??= (async () => {
        await stop(child, 'SIGTERM', 5000)
        // start_server waits for its workers on SIGTERM; if it had to be killed, they are orphans now.
        for (const { pid } of await workers(status)) {
          const command = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
          if (command.includes(configPath)) process.kill(pid, 'SIGKILL')
        }
        await rm(dir, { recursive: true, force: true })
      })()
      return closed
    },
  }
}

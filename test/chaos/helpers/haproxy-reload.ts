/**
 * haproxy (Debian `haproxy`) terminating TLS and HTTP/2 in front of an
 * HTTP/1.1 upstream, reloaded the classic way: a new process is started
 * with `-sf <old pids>`, takes the listening socket over (`-x`, through the
 * old process's admin socket with `expose-fd listeners`), and tells the old
 * process to finish: it stops accepting, sends GOAWAY on its HTTP/2
 * connections, completes their streams and exits (`hard-stop-after` bounds
 * how long it may take).
 *
 * Not to be confused with test/helpers/haproxy.ts (a TCP-mode VIP for the
 * load-balancing tests), whose admin-socket check this shares.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { HAPROXY_BINARY, haproxyAnswers } from '../../helpers/haproxy.js'
import { freePort, start, stop, until, type Child } from '../../helpers/processes.js'

export { HAPROXY_BINARY }

const fixture = (name: string) => fileURLToPath(new URL(`../../fixtures/${name}`, import.meta.url))

export interface ReloadableHaproxy {
  readonly host: string
  readonly port: number
  /** Reloads done so far. */
  readonly reloads: number
  /** Old processes still draining. */
  readonly draining: number
  /** Starts a new process with `-sf`; resolves once it answers on its admin socket. */
  reload(): Promise<void>
  /** Resolves once every old process has exited (bounded). */
  drained(limit?: number): Promise<void>
  close(): Promise<void>
}

function config(options: { host: string; port: number; socket: string; pem: string; upstream: { host: string; port: number } }): string {
  return `global
  nbthread 1
  stats socket ${options.socket} mode 600 level admin expose-fd listeners
  hard-stop-after 10s

defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 30s

frontend fe
  bind ${options.host}:${options.port} ssl crt ${options.pem} alpn h2
  default_backend app

backend app
  http-reuse always
  server app1 ${options.upstream.host}:${options.upstream.port}
`
}

export async function startReloadableHaproxy(options: { host: string; upstream: { host: string; port: number } }): Promise<ReloadableHaproxy> {
  const dir = await mkdtemp(join(tmpdir(), 'drainpipe-haproxy-reload-'))
  const pem = join(dir, 'api.test.pem')
  await writeFile(pem, Buffer.concat([await readFile(fixture('api.test.crt')), await readFile(fixture('api.test.key'))]))
  const port = await freePort(options.host)
  const processes: Child[] = []
  let generation = 0
  let reloads = 0

  const launch = async (): Promise<void> => {
    generation++
    const socket = join(dir, `admin-${generation}.sock`)
    const configPath = join(dir, `haproxy-${generation}.cfg`)
    await writeFile(configPath, config({ host: options.host, port, socket, pem, upstream: options.upstream }))
    const old = processes.filter((child) => child.running)
    const args = ['-db', '-q', '-f', configPath]
    if (old.length > 0) {
      // Take the listener over from the newest old process, then tell the old ones to finish.
      args.push('-x', join(dir, `admin-${generation - 1}.sock`), '-sf', ...old.map((child) => String(child.process.pid)))
    }
    const child = start(HAPROXY_BINARY, args)
    processes.push(child)
    await until(
      async () => !child.running || (await haproxyAnswers(socket)),
      `haproxy generation ${generation} on ${options.host}:${port}`,
      5000,
    )
    if (!child.running) throw new Error(`haproxy did not start: ${child.output()}`)
  }

  await launch()
  let closed: Promise<void> | undefined
  return {
    host: options.host,
    port,
    get reloads() {
      return reloads
    },
    get draining() {
      return processes.filter((child) => child.running).length - 1
    },
    async reload() {
      await launch()
      reloads++
    },
    async drained(limit = 12_000) {
      const current = processes[processes.length - 1]
      await until(() => processes.every((child) => child === current || !child.running), 'old haproxy processes to exit', limit)
    },
    close() {
      closed ??= Promise.all(processes.map((child) => stop(child, 'SIGTERM', 2000))).then(() => rm(dir, { recursive: true, force: true }))
      return closed
    },
  }
}

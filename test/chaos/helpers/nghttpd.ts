/**
 * nghttpd (Debian `nghttp2-server`), nghttp2's own HTTP/2 server, serving
 * static files over TLS with the test PKI's api.test certificate. It can be
 * killed (any signal) and started again on the same address and port.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { accepts, freePort, start, stop, until, type Child } from '../../helpers/processes.js'

export const NGHTTPD_BINARY = '/usr/sbin/nghttpd'

const fixture = (name: string) => fileURLToPath(new URL(`../../fixtures/${name}`, import.meta.url))

export interface Nghttpd {
  readonly host: string
  readonly port: number
  /** Starts counted from 1. */
  readonly starts: number
  readonly running: boolean
  /** Kills the server with `signal` and resolves once it has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>
  /** Starts it again on the same address and port; resolves once it accepts connections. */
  restart(): Promise<void>
  close(): Promise<void>
}

/** Files to serve: name → content; `args`: more nghttpd options (`--echo-upload`, `-m 10`, …). */
export async function startNghttpd(options: { host: string; files: Record<string, string | Buffer>; args?: string[] }): Promise<Nghttpd> {
  const dir = await mkdtemp(join(tmpdir(), 'drainpipe-nghttpd-'))
  for (const [name, content] of Object.entries(options.files)) await writeFile(join(dir, name), content)
  let port = await freePort(options.host)
  let child: Child | undefined
  let starts = 0

  const launch = async (): Promise<boolean> => {
    const candidate = start(NGHTTPD_BINARY, ['-a', options.host, '-d', dir, ...(options.args ?? []), String(port), fixture('api.test.key'), fixture('api.test.crt')])
    await until(async () => !candidate.running || (await accepts(options.host, port)), `nghttpd on ${options.host}:${port}`, 5000)
    if (!candidate.running) return false
    child = candidate
    starts++
    return true
  }

  for (let attempt = 1; !(await launch()); attempt++) {
    if (attempt >= 3) throw new Error('nghttpd did not start')
    port = await freePort(options.host)
  }
  let closed: Promise<void> | undefined
  return {
    host: options.host,
    port,
    get starts() {
      return starts
    },
    get running() {
      return child?.running ?? false
    },
    async kill(signal = 'SIGKILL') {
      if (child) await stop(child, signal, 2000)
    },
    async restart() {
      // The same port: a fresh bind right after a kill can race the kernel; retry a few times.
      for (let attempt = 1; !(await launch()); attempt++) {
        if (attempt >= 20) throw new Error(`nghttpd did not restart on ${options.host}:${port}`)
      }
    },
    close() {
      closed ??= (child ? stop(child, 'SIGTERM', 2000) : Promise.resolve()).then(() => rm(dir, { recursive: true, force: true }))
      return closed
    },
  }
}

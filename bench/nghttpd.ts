/**
 * The target server: nghttpd (Debian `nghttp2-server`), a native HTTP/2
 * server, pinned to its own core so that it is never the bottleneck.
 *
 * It serves a docroot made at bench start: `small.json` (a small JSON body)
 * and `10m.bin` (10 MiB of random bytes). nghttpd answers a POST to a static
 * file with that file once it has read (and discarded) the whole request
 * body, so `POST /small.json` is both the small-POST and the 10 MiB upload
 * endpoint: the upload is measured to the last byte, the answer is small.
 *
 * nghttpd's receive windows are raised (`-w 24 -W 24`, 16 MiB) so uploads
 * measure the client, not a 64 KiB server window; the client's own windows
 * (which govern downloads) are left at each client's defaults.
 *
 * When nghttpd is not installed, a node:http2 server with the same files
 * and behaviour (`fallback-server.ts`) stands in, pinned the same way, and
 * the report says so: its figures are not comparable with nghttpd's.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { LARGE_SIZE, PATHS, POST_BODY, sleep, type Target } from './common.js'

export const repoRoot = fileURLToPath(new URL('..', import.meta.url))
export const fixtures = path.join(repoRoot, 'test', 'fixtures')
export const caPath = path.join(fixtures, 'ca.crt')

/** A small JSON document, about the size of a typical API answer. */
export const SMALL_BODY = JSON.stringify({
  id: 'c0ffee',
  status: 'ok',
  items: [1, 2, 3, 5, 8, 13, 21, 34],
  message: 'a small JSON answer, about the size of a typical API response',
})

export function which(binary: string): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/bin', '/sbin', '/usr/local/bin', '/usr/local/sbin']) {
    if (dir && existsSync(path.join(dir, binary))) return path.join(dir, binary)
  }
  return undefined
}

/** `taskset -c CPU` in front of a command, when taskset exists and the machine has that CPU. */
export function pinned(cpu: number | undefined, command: string, args: string[]): [string, string[]] {
  const taskset = which('taskset')
  if (cpu === undefined || taskset === undefined || cpu >= os.availableParallelism()) return [command, args]
  return [taskset, ['-c', String(cpu), command, ...args]]
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

async function waitForPort(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the server exited with code ${child.exitCode} before listening`)
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port })
      socket.once('connect', () => {
        socket.destroy()
        resolve(true)
      })
      socket.once('error', () => resolve(false))
    })
    if (ok) return
    await sleep(50)
  }
  throw new Error(`the server did not listen on port ${port} within ${timeoutMs} ms`)
}

export interface Server {
  target: Target
  /** What serves: `nghttpd nghttp2/1.52.0` or the node:http2 fallback. */
  description: string
  native: boolean
  docroot: string
  /** The server process (taskset execs it, so this is nghttpd itself). */
  pid: number | undefined
  stop(): Promise<void>
}

export async function startServer(cpu: number | undefined): Promise<Server> {
  const docroot = await mkdtemp(path.join(os.tmpdir(), 'drainpipe-bench-'))
  await writeFile(path.join(docroot, PATHS.small.slice(1)), SMALL_BODY)
  await writeFile(path.join(docroot, PATHS.large.slice(1)), randomBytes(LARGE_SIZE))
  // h2load's POST body (-d): the same 256 bytes the clients send.
  await writeFile(path.join(docroot, 'post.json'), POST_BODY)
  const port = await freePort()
  const key = path.join(fixtures, 'api.test.key')
  const cert = path.join(fixtures, 'api.test.crt')
  const nghttpd = which('nghttpd')
  let child: ChildProcess
  let description: string
  if (nghttpd !== undefined) {
    const version = spawnSync(nghttpd, ['--version'], { encoding: 'utf8' }).stdout.trim()
    // -m 128: more stream slots than the 100 concurrent requests, so a client
    // whose slot bookkeeping lags a little never waits on the server.
    const [command, args] = pinned(cpu, nghttpd, ['-d', docroot, '-a', '127.0.0.1', '-w', '24', '-W', '24', '-m', '128', String(port), key, cert])
    child = spawn(command, args, { stdio: ['ignore', 'ignore', 'inherit'] })
    description = `${version}, TLS, pinned to CPU ${cpu ?? '(unpinned)'}`
  } else {
    console.warn('!! nghttpd not found (apt-get install nghttp2-server): falling back to a node:http2 server; figures are not comparable with nghttpd runs')
    const [command, args] = pinned(cpu, process.execPath, ['--import', 'tsx', path.join(repoRoot, 'bench', 'fallback-server.ts'), docroot, String(port), key, cert])
    child = spawn(command, args, { stdio: ['ignore', 'ignore', 'inherit'], cwd: repoRoot })
    description = `node:http2 fallback server (nghttpd not installed), TLS, pinned to CPU ${cpu ?? '(unpinned)'}`
  }
  try {
    await waitForPort(port, child, 10_000)
  } catch (error) {
    child.kill('SIGKILL')
    await rm(docroot, { recursive: true, force: true })
    throw error
  }
  return {
    target: { origin: `https://127.0.0.1:${port}`, port, caPath },
    description,
    native: nghttpd !== undefined,
    docroot,
    pid: child.pid,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve))
        child.kill('SIGTERM')
        await Promise.race([exited, sleep(2000)])
        if (child.exitCode === null) child.kill('SIGKILL')
      }
      await rm(docroot, { recursive: true, force: true })
    },
  }
}

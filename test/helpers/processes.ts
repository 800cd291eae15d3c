/**
 * The native peers tests run as child processes (dnsmasq, haproxy, nginx,
 * nghttpd, Apache httpd, h2o): whether a binary is installed, the skip-or-fail rule for missing
 * Debian packages, free ports, starting a server and waiting until it is
 * ready (retrying on another port when it lost its port), and stopping a
 * process for sure.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { once } from 'node:events'
import { accessSync, constants } from 'node:fs'
import { connect, createServer, type AddressInfo } from 'node:net'

/** Whether an executable exists at `path`. */
export function installed(path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

export interface Requirement {
  /** Skip the tests: the binary is missing and CI is not set. */
  skip: boolean
  /** Appended to the describe title when skipped, naming the reason. */
  note: string
  /** Throws in CI when the binary is missing (call it first in every test). */
  check(): void
}

/**
 * Tests that need a Debian package skip, naming the reason in their title,
 * where the binary is missing on a developer's machine; in CI (env `CI`)
 * they run and fail, because CI installs the package.
 */
export function requires(binary: string, debianPackage: string): Requirement {
  const missing = !installed(binary)
  const skip = missing && !process.env.CI
  return {
    skip,
    note: skip ? ` (skipped: ${binary} missing, install the Debian package ${debianPackage})` : '',
    check() {
      if (missing) throw new Error(`CI is set but ${binary} is missing: install the Debian package ${debianPackage}`)
    },
  }
}

/** A TCP port that was free on `host` a moment ago (callers retry if it was taken since). */
export async function freePort(host: string): Promise<number> {
  const server = createServer()
  server.listen(0, host)
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/** Whether a TCP connection to host:port is accepted now. */
export function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port })
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

/** Polls (bounded) until `condition` holds; throws naming `what` otherwise. */
export async function until(condition: () => boolean | Promise<boolean>, what: string, limit = 5000, every = 10): Promise<void> {
  if (!(await poll(condition, limit, every))) throw new Error(`timed out after ${limit} ms waiting for ${what}`)
}

/** Polls until `condition` holds (true) or `limit` ms have passed (false). */
async function poll(condition: () => boolean | Promise<boolean>, limit: number, every: number): Promise<boolean> {
  const deadline = Date.now() + limit
  while (!(await condition())) {
    if (Date.now() > deadline) return false
    await new Promise((resolve) => setTimeout(resolve, every))
  }
  return true
}

export interface Child {
  readonly process: ChildProcess
  /** The last 8 KB of stderr and stdout, for error messages. */
  output(): string
  /** Resolves when the process has exited (now if it already has). */
  exited(): Promise<void>
  readonly running: boolean
}

/** Spawns a process, keeps the tail of its output, and kills it if the test process exits first. */
export function start(binary: string, args: string[], options: SpawnOptions = {}): Child {
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options })
  let output = ''
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-8192)
  }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  child.on('error', (error) => keep(Buffer.from(`\nspawn error: ${error.message}\n`)))
  const killOnExit = () => child.kill('SIGKILL')
  process.once('exit', killOnExit)
  const exit = new Promise<void>((resolve) => {
    child.once('exit', () => resolve())
    child.once('error', () => resolve())
  }).then(() => {
    process.removeListener('exit', killOnExit)
  })
  return {
    process: child,
    output: () => output,
    exited: () => exit,
    get running() {
      return child.exitCode === null && child.signalCode === null && child.pid !== undefined
    },
  }
}

/** Polls `check` while the process runs: true once it holds, false if the process exits first or `limit` ms pass. */
export async function ready(child: Child, check: () => Promise<boolean>, limit: number, every: number): Promise<boolean> {
  return (await poll(async () => !child.running || (await check()), limit, every)) && child.running
}

/** Why a server did not start, and whether another port may help. */
export interface Failure {
  reason: string
  portTaken: boolean
}

/**
 * Launches a server on a port that was free a moment ago. Another process may
 * bind that port before the server does, so a launch that failed that way is
 * tried again on a new port, `attempts` times in all; any other failure throws
 * `<name> did not start: <reason>`.
 */
export async function startOnFreePort(
  name: string,
  attempts: number,
  pickPort: () => Promise<number>,
  launch: (port: number) => Promise<Child | Failure>,
): Promise<{ child: Child; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const port = await pickPort()
    const launched = await launch(port)
    if (!('reason' in launched)) return { child: launched, port }
    if (!launched.portTaken || attempt === attempts) throw new Error(`${name} did not start: ${launched.reason}`)
  }
}

/** Sends `signal`, escalates to SIGKILL after `grace` ms, and resolves once the process has exited. */
export async function stop(child: Child, signal: NodeJS.Signals = 'SIGTERM', grace = 3000): Promise<void> {
  if (!child.running) return child.exited()
  child.process.kill(signal)
  const escalate = setTimeout(() => child.process.kill('SIGKILL'), grace)
  await child.exited()
  clearTimeout(escalate)
}

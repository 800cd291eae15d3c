/**
 * A real dnsmasq (Debian package `dnsmasq-base`) serving A records from a
 * hosts file on a loopback port, for tests that want a production DNS server
 * rather than the in-repo one (./dns-server.ts).
 *
 * Unknown names get NXDOMAIN (`--local=/#/`: every domain is local, nothing is
 * forwarded), answers have TTL 0, and a change of records is applied by
 * rewriting the hosts file and sending SIGHUP, then polling until dnsmasq
 * serves the new answer.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { Resolver } from 'node:dns/promises'
import { once } from 'node:events'
import { accessSync, constants } from 'node:fs'
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import { isIPv4 } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'

export const DNSMASQ_BINARY = '/usr/sbin/dnsmasq'

export interface Dnsmasq {
  /** The UDP (and TCP) port dnsmasq listens on, at 127.0.0.1. */
  port: number
  /** `127.0.0.1:port`, as `Resolver#setServers()` takes it. */
  server: string
  /** Replace the A records of `name` (`[]` removes the name: NXDOMAIN); resolves once dnsmasq serves them. */
  setRecords(name: string, ipv4s: string[]): Promise<void>
  /** Stop dnsmasq and remove its files. Safe to call more than once. */
  close(): Promise<void>
}

/** Whether the dnsmasq binary is installed (and executable). */
export function dnsmasqAvailable(): boolean {
  try {
    accessSync(DNSMASQ_BINARY, constants.X_OK)
    return true
  } catch {
    return false
  }
}

const START_ATTEMPTS = 5
const READY_TIMEOUT = 5000
const POLL_INTERVAL = 20

export async function startDnsmasq(options: { records: Record<string, string[]> }): Promise<Dnsmasq> {
  const records = new Map<string, string[]>()
  for (const [name, ipv4s] of Object.entries(options.records)) records.set(normalise(name), checked(name, ipv4s))

  const dir = await mkdtemp(join(tmpdir(), 'drainpipe-dnsmasq-'))
  const hostsFile = join(dir, 'hosts')
  const writeHosts = async () => {
    const lines = [...records].flatMap(([name, ipv4s]) => ipv4s.map((ip) => `${ip} ${name}\n`))
    await writeFile(`${hostsFile}.new`, lines.join(''))
    await rename(`${hostsFile}.new`, hostsFile) // dnsmasq never sees a half-written file
  }
  await writeHosts()

  let child: ChildProcess | undefined
  let port = 0
  try {
    for (let attempt = 1; child === undefined; attempt++) {
      port = await freeUdpPort()
      const started = await spawnDnsmasq(port, hostsFile, records)
      if ('child' in started) child = started.child
      else if (!started.portTaken || attempt === START_ATTEMPTS) throw new Error(`dnsmasq did not start: ${started.reason}`)
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true })
    throw err
  }

  const running = child
  const killOnExit = () => running.kill('SIGKILL') // never leave dnsmasq behind if the test process ends
  process.once('exit', killOnExit)
  let closed: Promise<void> | undefined
  const server = `127.0.0.1:${port}`

  return {
    port,
    server,
    async setRecords(name, ipv4s) {
      records.set(normalise(name), checked(name, ipv4s))
      await writeHosts()
      running.kill('SIGHUP') // dnsmasq clears its cache and re-reads --addn-hosts
      if (!(await servesRecords(server, new Map([[normalise(name), ipv4s]]), () => running.exitCode !== null))) {
        throw new Error(`dnsmasq did not serve the new records of ${name} within ${READY_TIMEOUT} ms`)
      }
    },
    close() {
      closed ??= (async () => {
        process.removeListener('exit', killOnExit)
        await stop(running)
        await rm(dir, { recursive: true, force: true })
      })()
      return closed
    },
  }
}

type Started = { child: ChildProcess } | { reason: string; portTaken: boolean }

/** Start dnsmasq on `port` and wait until it answers with `records`, or fails. */
async function spawnDnsmasq(port: number, hostsFile: string, records: Map<string, string[]>): Promise<Started> {
  const args = [
    '--no-daemon', // foreground; also: no pid file, no change of user id
    `--port=${port}`,
    '--listen-address=127.0.0.1',
    '--bind-interfaces',
    '--no-resolv', // no upstream servers: never forward anything off the machine
    '--no-hosts',
    `--addn-hosts=${hostsFile}`,
    '--local=/#/', // answer NXDOMAIN for unknown names (without it, dnsmasq answers REFUSED)
    '--local-ttl=0',
    '--conf-file=/dev/null',
    '--log-facility=-', // stderr only, not the machine's syslog
  ]
  if (process.getuid?.() === 0) args.push('--user=root')
  const child = spawn(DNSMASQ_BINARY, args, { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000)
  })
  let spawnError: Error | undefined
  child.once('error', (err) => (spawnError = err))
  const exited = () => spawnError !== undefined || child.exitCode !== null || child.signalCode !== null

  const expected = records.size > 0 ? records : new Map([['drainpipe-probe.invalid', []]])
  if (await servesRecords(`127.0.0.1:${port}`, expected, exited)) return { child }

  await stop(child)
  const reason = spawnError?.message ?? (stderr.trim() || `no answer on port ${port} within ${READY_TIMEOUT} ms`)
  return { reason, portTaken: /address already in use/i.test(stderr) }
}

/**
 * Poll `server` until every name resolves to exactly its addresses (an empty list: NXDOMAIN).
 * False if `gaveUp()` or the deadline comes first.
 */
async function servesRecords(server: string, expected: Map<string, string[]>, gaveUp: () => boolean): Promise<boolean> {
  const resolver = new Resolver({ timeout: 250, tries: 1 })
  resolver.setServers([server])
  const deadline = Date.now() + READY_TIMEOUT
  const pending = new Map(expected)
  while (Date.now() < deadline && !gaveUp()) {
    for (const [name, ipv4s] of pending) {
      if (gaveUp()) return false
      const answer = await resolver.resolve4(name).catch((err: NodeJS.ErrnoException) => err.code)
      if (sameAddresses(answer, ipv4s)) pending.delete(name)
    }
    if (pending.size === 0) return true
    await delay(POLL_INTERVAL)
  }
  return false
}

function sameAddresses(answer: string[] | string | undefined, ipv4s: string[]): boolean {
  if (ipv4s.length === 0) return answer === 'ENOTFOUND'
  return Array.isArray(answer) && [...answer].sort().join() === [...ipv4s].sort().join()
}

/** A UDP port that was free a moment ago (bind to 0, read it, release it); the caller retries if it is taken since. */
async function freeUdpPort(): Promise<number> {
  const socket = createSocket('udp4')
  socket.bind(0, '127.0.0.1')
  await once(socket, 'listening')
  const { port } = socket.address()
  await new Promise<void>((resolve) => socket.close(() => resolve()))
  return port
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
  const exit = once(child, 'exit')
  child.kill('SIGTERM')
  const escalate = setTimeout(() => child.kill('SIGKILL'), 2000)
  await exit
  clearTimeout(escalate)
}

const normalise = (name: string) => name.toLowerCase().replace(/\.$/, '')

function checked(name: string, ipv4s: string[]): string[] {
  if (!/^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$/i.test(name)) throw new TypeError(`dnsmasq: invalid name ${JSON.stringify(name)}`)
  if (!Array.isArray(ipv4s) || !ipv4s.every((ip) => isIPv4(ip))) {
    throw new TypeError(`dnsmasq records of ${JSON.stringify(name)} must be an array of IPv4 addresses`)
  }
  return [...ipv4s]
}

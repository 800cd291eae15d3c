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
import { createSocket } from 'node:dgram'
import { Resolver } from 'node:dns/promises'
import { once } from 'node:events'
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import { isIPv4 } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ready, start, startOnFreePort, stop, type Child, type Failure } from './processes.js'

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

const START_ATTEMPTS = 5
const READY_TIMEOUT = 5000
const POLL_INTERVAL = 20
const STOP_GRACE = 2000

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

  const starting = startOnFreePort('dnsmasq', START_ATTEMPTS, freeUdpPort, (port) => spawnDnsmasq(port, hostsFile, records))
  const { child, port } = await starting.catch(async (err: unknown) => {
    await rm(dir, { recursive: true, force: true })
    throw err
  })
  let closed: Promise<void> | undefined
  const server = `127.0.0.1:${port}`

  return {
    port,
    server,
    async setRecords(name, ipv4s) {
      records.set(normalise(name), checked(name, ipv4s))
      await writeHosts()
      child.process.kill('SIGHUP') // dnsmasq clears its cache and re-reads --addn-hosts
      if (!(await ready(child, answers(server, new Map([[normalise(name), ipv4s]])), READY_TIMEOUT, POLL_INTERVAL))) {
        throw new Error(`dnsmasq did not serve the new records of ${name} within ${READY_TIMEOUT} ms`)
      }
    },
    close() {
      closed ??= stop(child, 'SIGTERM', STOP_GRACE).then(() => rm(dir, { recursive: true, force: true }))
      return closed
    },
  }
}

/** Start dnsmasq on `port` and wait until it answers with `records`, or fails. */
async function spawnDnsmasq(port: number, hostsFile: string, records: Map<string, string[]>): Promise<Child | Failure> {
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
  const child = start(DNSMASQ_BINARY, args)

  const expected = records.size > 0 ? records : new Map([['drainpipe-probe.invalid', []]])
  if (await ready(child, answers(`127.0.0.1:${port}`, expected), READY_TIMEOUT, POLL_INTERVAL)) return child

  await stop(child, 'SIGTERM', STOP_GRACE)
  const output = child.output()
  const reason = output.trim() || `no answer on port ${port} within ${READY_TIMEOUT} ms`
  return { reason, portTaken: /address already in use/i.test(output) }
}

/**
 * A check that holds once `server` has resolved every name to exactly its addresses (an empty list: NXDOMAIN).
 * Each call asks only for the names not yet answered right.
 */
function answers(server: string, expected: Map<string, string[]>): () => Promise<boolean> {
  const resolver = new Resolver({ timeout: 250, tries: 1 })
  resolver.setServers([server])
  const pending = new Map(expected)
  return async () => {
    for (const [name, ipv4s] of pending) {
      const answer = await resolver.resolve4(name).catch((err: NodeJS.ErrnoException) => err.code)
      if (sameAddresses(answer, ipv4s)) pending.delete(name)
    }
    return pending.size === 0
  }
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

const normalise = (name: string) => name.toLowerCase().replace(/\.$/, '')

function checked(name: string, ipv4s: string[]): string[] {
  if (!/^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$/i.test(name)) throw new TypeError(`dnsmasq: invalid name ${JSON.stringify(name)}`)
  if (!Array.isArray(ipv4s) || !ipv4s.every((ip) => isIPv4(ip))) {
    throw new TypeError(`dnsmasq records of ${JSON.stringify(name)} must be an array of IPv4 addresses`)
  }
  return [...ipv4s]
}

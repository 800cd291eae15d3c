/**
 * A real L4 load balancer for tests: haproxy in TCP mode on a loopback port,
 * `balance roundrobin` over the given backends, as a Kubernetes ClusterIP /
 * cloud VIP in front of several pods. TLS passes through untouched, so the
 * client still talks HTTP/2 to the backends; every new TCP connection may land
 * on another backend, which is what recycling relies on behind a VIP.
 *
 * Servers can be taken out and put back at runtime through haproxy's admin
 * socket (no reload), to scale the pool behind the VIP.
 *
 * Needs the Debian package `haproxy` (/usr/sbin/haproxy).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, ready, start, startOnFreePort, stop, type Child, type Failure } from './processes.js'

export const HAPROXY_BINARY = '/usr/sbin/haproxy'

export interface HaproxyServer {
  host: string
  port: number
  /** Out of rotation at start (maintenance) until `enable()`. Default false. */
  disabled?: boolean
}

export interface HaproxyOptions {
  servers: HaproxyServer[]
  /** Address the VIP listens on. Default 127.0.0.1. */
  host?: string
}

export interface Haproxy {
  /** The VIP's address. */
  host: string
  /** The VIP's TCP port. */
  port: number
  /** The server names, in the order given (`pod1`, `pod2`, …). */
  names: string[]
  /** Put the server at `host:port` (or named so) into rotation. */
  enable(server: string): Promise<void>
  /** Take the server out of rotation for new connections (maintenance); live connections stay. */
  disable(server: string): Promise<void>
  /** Connections per server: open now and accepted in total. */
  sessions(): Promise<Record<string, { current: number; total: number }>>
  /** Stop haproxy and remove its files. Safe to call more than once. */
  close(): Promise<void>
}

const START_ATTEMPTS = 5
const READY_TIMEOUT = 5000
const POLL_INTERVAL = 20
const STOP_GRACE = 2000

export async function startHaproxy(options: HaproxyOptions): Promise<Haproxy> {
  const host = options.host ?? '127.0.0.1'
  if (options.servers.length === 0) throw new TypeError('startHaproxy: at least one server is needed')
  const servers = options.servers.map((server, index) => ({ ...server, name: `pod${index + 1}` }))
  const dir = await mkdtemp(join(tmpdir(), 'drainpipe-haproxy-'))
  const socketPath = join(dir, 'admin.sock')
  const configPath = join(dir, 'haproxy.cfg')

  const starting = startOnFreePort('haproxy', START_ATTEMPTS, () => freePort(host), async (port) => {
    await writeFile(configPath, config({ host, port, socketPath, servers }))
    return spawnHaproxy(configPath, socketPath)
  })
  const { child, port } = await starting.catch(async (error: unknown) => {
    await rm(dir, { recursive: true, force: true })
    throw error
  })
  let closed: Promise<void> | undefined

  const nameOf = (server: string) => {
    const found = servers.find((s) => s.name === server || `${s.host}:${s.port}` === server || s.host === server)
    if (found === undefined) throw new Error(`haproxy: no server ${JSON.stringify(server)}`)
    return found.name
  }
  const setState = async (server: string, state: 'ready' | 'maint') => {
    const answer = (await command(socketPath, `set server pods/${nameOf(server)} state ${state}`)).trim()
    if (answer !== '') throw new Error(`haproxy: set server ${server} state ${state}: ${answer}`)
  }

  return {
    host,
    port,
    names: servers.map((s) => s.name),
    enable: (server) => setState(server, 'ready'),
    disable: (server) => setState(server, 'maint'),
    async sessions() {
      // `show stat` is CSV: the header line names the columns.
      const [header, ...rows] = (await command(socketPath, 'show stat')).replace(/^# /, '').trim().split('\n')
      const columns = header!.split(',')
      const at = (row: string[], column: string) => row[columns.indexOf(column)]!
      const result: Record<string, { current: number; total: number }> = {}
      for (const line of rows) {
        const row = line.split(',')
        if (at(row, 'pxname') !== 'pods' || at(row, 'svname') === 'BACKEND') continue
        result[at(row, 'svname')] = { current: Number(at(row, 'scur')), total: Number(at(row, 'stot')) }
      }
      return result
    },
    close() {
      closed ??= stop(child, 'SIGTERM', STOP_GRACE).then(() => rm(dir, { recursive: true, force: true }))
      return closed
    },
  }
}

function config(options: { host: string; port: number; socketPath: string; servers: (HaproxyServer & { name: string })[] }): string {
  const servers = options.servers
    .map((s) => `  server ${s.name} ${s.host}:${s.port}${s.disabled ? ' disabled' : ''}`)
    .join('\n')
  return `global
  # One thread: a light footprint on a test machine, and one round-robin order.
  nbthread 1
  stats socket ${options.socketPath} mode 600 level admin

defaults
  mode tcp
  timeout connect 2s
  timeout client 60s
  timeout server 60s

frontend vip
  bind ${options.host}:${options.port}
  default_backend pods

backend pods
  balance roundrobin
${servers}
`
}

/** Start haproxy in the foreground and wait until its admin socket answers, or it fails. */
async function spawnHaproxy(configPath: string, socketPath: string): Promise<Child | Failure> {
  // -db: foreground, no daemon; -q: quiet (errors still reach stderr).
  const child = start(HAPROXY_BINARY, ['-db', '-q', '-f', configPath])
  if (await ready(child, () => haproxyAnswers(socketPath), READY_TIMEOUT, POLL_INTERVAL)) return child

  await stop(child, 'SIGTERM', STOP_GRACE)
  const output = child.output()
  const reason = output.trim() || `no answer on ${socketPath} within ${READY_TIMEOUT} ms`
  return { reason, portTaken: /address already in use|cannot bind socket/i.test(output) }
}

/** Whether haproxy answers on its admin socket: it does once the configuration is loaded and the listeners are bound. */
export async function haproxyAnswers(socketPath: string): Promise<boolean> {
  const answer = await command(socketPath, 'show info').catch(() => '')
  return answer.includes('Name: HAProxy')
}

/** One command on haproxy's admin socket; resolves with the whole answer (haproxy closes after it). */
function command(socketPath: string, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath)
    let answer = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => (answer += chunk))
    socket.once('error', reject)
    socket.once('end', () => resolve(answer))
    socket.once('connect', () => socket.end(`${line}\n`))
  })
}

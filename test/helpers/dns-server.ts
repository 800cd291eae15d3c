/**
 * A tiny authoritative DNS server over UDP for tests and examples.
 *
 * It answers only what it is told: A records for configured names (TTL 0, so
 * nothing downstream may cache them), NXDOMAIN for unknown names, an empty
 * NOERROR answer for any other record type of a known name, and SERVFAIL or
 * silence for names set to fail. Records and failures can be changed at any
 * time; the next query sees the change.
 *
 * Uses only erasable TypeScript syntax, so examples can run it with
 * type stripping.
 */
import { createSocket, type RemoteInfo } from 'node:dgram'
import { once } from 'node:events'
import { isIP, isIPv4 } from 'node:net'
import dnsPacket, { type Answer, type DecodedPacket } from 'dns-packet'

export type DnsFailure = 'servfail' | 'timeout'

export interface DnsServerOptions {
  /** Address to bind. Default 127.0.0.1. */
  host?: string
  /** UDP port. Default 0 (the system picks a free one). */
  port?: number
}

export interface DnsServer {
  /** The bound UDP port. */
  port: number
  /** The bound IP address. */
  address: string
  /** `address:port` in the form `Resolver#setServers()` accepts. */
  server: string
  /** Set the A records of `name`. An empty list makes the name known but without addresses (empty NOERROR). */
  setRecords(name: string, ipv4s: string[]): void
  /** Make queries for `name` fail with SERVFAIL, or go unanswered (`'timeout'`); `null` restores normal answers. */
  setFailure(name: string, failure: DnsFailure | null): void
  /** How many queries arrived for `name`, of any record type, or only of `type` (e.g. `'A'`). */
  queries(name: string, type?: string): number
  /** Stop answering and release the port. Safe to call more than once. */
  close(): Promise<void>
}

// Response codes (RFC 1035 §4.1.1), carried in the low 4 bits of the flags.
const NOERROR = 0
const FORMERR = 1
const SERVFAIL = 2
const NXDOMAIN = 3
const NOTIMP = 4
const OPCODE_QUERY = 0

/** DNS names are case-insensitive; a trailing dot (fully qualified form) means the same name. */
const normalise = (name: string) => name.toLowerCase().replace(/\.$/, '')

export async function startDnsServer(options: DnsServerOptions = {}): Promise<DnsServer> {
  const { host = '127.0.0.1', port = 0 } = options
  const family = isIP(host)
  if (family === 0) throw new TypeError(`startDnsServer: host must be an IP address, got ${JSON.stringify(host)}`)

  const records = new Map<string, string[]>()
  const failures = new Map<string, DnsFailure>()
  const counts = new Map<string, Map<string, number>>() // name → record type → queries

  const socket = createSocket(family === 6 ? 'udp6' : 'udp4')

  const reply = (query: DecodedPacket, rcode: number, answers: Answer[], to: RemoteInfo) => {
    const recursionDesired = (query.flags ?? 0) & dnsPacket.RECURSION_DESIRED
    const response = dnsPacket.encode({
      type: 'response',
      id: query.id ?? 0,
      flags: dnsPacket.AUTHORITATIVE_ANSWER | recursionDesired | rcode,
      questions: query.questions ?? [],
      answers,
    })
    // A failed send means the client is gone; it will time out or retry on its own.
    socket.send(response, to.port, to.address, () => {})
  }

  const answer = (query: DecodedPacket, from: RemoteInfo) => {
    const opcode = ((query.flags ?? 0) >> 11) & 0xf
    if (opcode !== OPCODE_QUERY) return reply(query, NOTIMP, [], from)
    const questions = query.questions ?? []
    if (questions.length !== 1) return reply(query, FORMERR, [], from)

    const question = questions[0]!
    const name = normalise(question.name)
    const byType = counts.get(name) ?? new Map<string, number>()
    byType.set(question.type, (byType.get(question.type) ?? 0) + 1)
    counts.set(name, byType)

    const failure = failures.get(name)
    if (failure === 'timeout') return
    if (failure === 'servfail') return reply(query, SERVFAIL, [], from)

    const ipv4s = records.get(name)
    if (ipv4s === undefined) return reply(query, NXDOMAIN, [], from)
    if (question.type !== 'A') return reply(query, NOERROR, [], from)
    const answers = ipv4s.map((ip): Answer => ({ type: 'A', name: question.name, ttl: 0, data: ip }))
    reply(query, NOERROR, answers, from)
  }

  socket.on('message', (message, from) => {
    let query: DecodedPacket
    try {
      query = dnsPacket.decode(message)
    } catch {
      return // Not a DNS message: nothing sensible to answer.
    }
    if (query.type !== 'query') return
    answer(query, from)
  })

  socket.bind(port, host)
  await once(socket, 'listening') // rejects with the bind error (e.g. EADDRINUSE)
  const bound = socket.address()

  let closed: Promise<void> | undefined

  return {
    port: bound.port,
    address: bound.address,
    server: family === 6 ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`,
    setRecords(name, ipv4s) {
      if (!Array.isArray(ipv4s) || !ipv4s.every((ip) => isIPv4(ip))) {
        throw new TypeError(`setRecords(${JSON.stringify(name)}): ipv4s must be an array of IPv4 addresses`)
      }
      records.set(normalise(name), [...ipv4s])
    },
    setFailure(name, failure) {
      if (failure === null) failures.delete(normalise(name))
      else failures.set(normalise(name), failure)
    },
    queries(name, type) {
      const byType = counts.get(normalise(name))
      if (byType === undefined) return 0
      if (type !== undefined) return byType.get(type) ?? 0
      let total = 0
      for (const count of byType.values()) total += count
      return total
    },
    close() {
      closed ??= new Promise((resolve) => socket.close(() => resolve()))
      return closed
    },
  }
}

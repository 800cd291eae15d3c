import net, { isIP } from 'node:net'
import tls from 'node:tls'
import { ConnectError, ProtocolNegotiationError } from './errors.js'
import type { ConnectOptions } from './options.js'

// Building a TLS context parses the CA bundle (and copies the root store):
// ~1 ms of blocking work per connection. One per `connect` options object.
const secureContexts = new WeakMap<ConnectOptions, tls.SecureContext>()

function secureContextFor(options: ConnectOptions): tls.SecureContext {
  let context = secureContexts.get(options)
  if (context === undefined) {
    context = tls.createSecureContext(options)
    secureContexts.set(options, context)
  }
  return context
}

/** The URL's host name as a lookup or SNI wants it: an IPv6 literal without its brackets. */
export function hostOf(url: URL): string {
  return url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
}

/** What `dialSocket` needs: where to connect, and how to verify TLS. */
export interface SocketTarget {
  /** Canonical origin, `https://host:port`, for messages. */
  readonly origin: string
  readonly url: URL
  /** Addresses of one lookup, the preferred first. */
  readonly addresses: readonly string[]
  readonly tls: ConnectOptions
}

/** A connected socket that negotiated `h2` (TLS with ALPN, or h2c by prior knowledge), and the address it reached. */
export interface DialedSocket {
  readonly socket: net.Socket
  readonly address: string
}

/** RFC 8305's "Connection Attempt Delay": the next address is tried when the previous one has not answered by then. */
const ATTEMPT_DELAY = 250

/**
 * Connects to the first address that answers, trying the others of the same
 * lookup (Happy Eyeballs, RFC 8305 §5): the next attempt starts when the
 * previous one failed or after `ATTEMPT_DELAY`, the first TCP connection wins
 * and the others are dropped. Then TLS with ALPN `h2` on the winner.
 *
 * The certificate is verified against the origin's host name (sent as SNI),
 * never against the IP we happen to connect to; IP-literal hosts send no SNI
 * and are verified against the IP. Verification is on unless the caller set
 * `rejectUnauthorized: false`. Rejects with `ConnectError` naming every
 * address tried, `ProtocolNegotiationError` when the server chose another
 * protocol, or the signal's reason; nothing is left open then.
 */
export function dialSocket(target: SocketTarget, signal: AbortSignal): Promise<DialedSocket> {
  const { url } = target
  const port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80)
  return new Promise<DialedSocket>((resolve, reject) => {
    const attempts: net.Socket[] = []
    const failures: string[] = []
    let next = 0
    let timer: NodeJS.Timeout | undefined
    let settled = false
    const finish = (error: Error | undefined, dialed?: DialedSocket) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      signal.removeEventListener('abort', onAbort)
      for (const socket of attempts) if (socket !== dialed?.socket) socket.destroy()
      if (error) reject(error)
      else resolve(dialed!)
    }
    const onAbort = () => finish(signal.reason as Error)
    const tryNext = () => {
      clearTimeout(timer)
      if (settled || next >= target.addresses.length) return
      const address = target.addresses[next++]!
      const socket = net.connect({ host: address, port, noDelay: true })
      attempts.push(socket)
      socket.once('connect', () => {
        socket.removeAllListeners('error')
        if (url.protocol === 'http:') finish(undefined, { socket, address })
        else secure(socket, address)
      })
      socket.once('error', (error: Error) => {
        failures.push(`${address}: ${error.message}`)
        attempts.splice(attempts.indexOf(socket), 1)
        if (attempts.length === 0 && next >= target.addresses.length) {
          finish(new ConnectError(`Could not connect to ${target.origin} (${failures.join('; ')})`, { cause: error }))
        } else {
          tryNext()
        }
      })
      if (next < target.addresses.length) timer = setTimeout(tryNext, ATTEMPT_DELAY)
    }
    const secure = (tcp: net.Socket, address: string) => {
      // The race is over: the other attempts go, this one is upgraded. The TLS socket owns
      // the TCP socket from now on (destroying both would free its handle twice: a crash).
      clearTimeout(timer)
      for (const other of attempts) if (other !== tcp) other.destroy()
      attempts.length = 0
      const host = hostOf(url)
      const servername = isIP(host) ? undefined : host
      // The TLS socket reports the TCP socket's errors from now on.
      tcp.on('error', () => {})
      const socket = tls.connect({
        ...(servername === undefined ? {} : { servername }),
        ...target.tls,
        secureContext: target.tls.secureContext ?? secureContextFor(target.tls),
        socket: tcp,
        // Over a socket of ours, `host` is only what the certificate is checked against: the origin's host, never the address.
        host,
        ALPNProtocols: ['h2', 'http/1.1'],
      })
      // The TLS socket owns the TCP handle now: destroying it closes both, while destroying the
      // TCP socket under a live TLS socket crashes the process (segfault on Node 20).
      attempts.push(socket)
      socket.once('error', (error: Error) =>
        finish(new ConnectError(`Could not connect to ${target.origin} at ${address}: ${error.message}`, { cause: error })),
      )
      socket.once('secureConnect', () => {
        socket.removeAllListeners('error')
        // A server that negotiates no protocol at all speaks HTTP/1.1.
        if (socket.alpnProtocol !== 'h2') {
          finish(new ProtocolNegotiationError(target.origin, socket.alpnProtocol || 'http/1.1'))
        } else {
          finish(undefined, { socket, address })
        }
      })
    }
    if (signal.aborted) return onAbort()
    signal.addEventListener('abort', onAbort, { once: true })
    if (target.addresses.length === 0) finish(new ConnectError(`No address to connect to for ${target.origin}`))
    else tryNext()
  })
}

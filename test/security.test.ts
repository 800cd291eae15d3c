/**
 * Security properties (see SECURITY.md):
 * - TLS verification is on by default, and against the origin's host name
 *   (sent as SNI), not the IP address a lookup pinned the connection to;
 * - `rejectUnauthorized: false` takes effect only where it was asked for;
 * - no header injection: CR, LF or NUL anywhere in a header, a method or a
 *   path is rejected before anything is written;
 * - authorization, cookie and proxy-authorization are never forwarded to
 *   another origin on a redirect;
 * - credentials in a URL are never sent.
 */
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { afterEach, describe, expect, it } from 'vitest'
import { interceptors, request as undiciRequest } from 'undici'
import { Client, ConnectError, DrainpipeError, InvalidArgumentError, InvalidHeaderError, type ClientOptions } from '../lib/index.js'
import { startBackend, tableLookup, type Backend, type BackendOptions } from './helpers/h2-server.js'
import { pki } from './helpers/pki.js'
import { FrameType, response, startHostileServer } from './hostile/server.js'

const cleanup: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

async function backend(options: BackendOptions = {}): Promise<Backend & { servernames: (string | false | null)[] }> {
  const started = await startBackend(options)
  const servernames: (string | false | null)[] = []
  started.server.on('secureConnection', (socket: TLSSocket) => servernames.push(socket.servername))
  cleanup.push(() => started.close())
  return Object.assign(started, { servernames })
}

function client(table: Record<string, string[]>, options: ClientOptions = {}): Client {
  const created = new Client({ lookup: tableLookup(table).lookup, connectTimeout: 3000, ...options })
  cleanup.push(() => created.destroy())
  return created
}

/** The request's failure, thrown or rejected (or undefined when it succeeded, body read). */
async function failure(send: () => Promise<{ body: { text(): Promise<string> } }>): Promise<unknown> {
  try {
    const res = await send()
    await res.body.text()
    return undefined
  } catch (error) {
    return error
  }
}

const causeCode = (error: unknown): string | undefined => ((error as { cause?: { code?: string } }).cause ?? {}).code

describe('TLS verification', () => {
  it('is on by default: a certificate from an unknown CA fails with ConnectError, nothing is sent', async () => {
    const server = await backend({ host: '127.0.0.71' })
    const plain = client({ 'api.test': [server.host] })
    const error = await failure(() => plain.request(`https://api.test:${server.port}/hello`))
    expect(error).toBeInstanceOf(ConnectError)
    expect(causeCode(error)).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT/)
    expect(server.requests).toBe(0)
    // `connect: {}` and an explicit `rejectUnauthorized: undefined` change nothing.
    for (const connect of [{}, { rejectUnauthorized: undefined }]) {
      const other = client({ 'api.test': [server.host] }, { connect })
      expect(await failure(() => other.request(`https://api.test:${server.port}/hello`))).toBeInstanceOf(ConnectError)
    }
    expect(server.requests).toBe(0)
  })

  it('is against the host name, not the pinned IP: a certificate valid for 127.0.0.1 does not pass for evil.example → 127.0.0.1', async () => {
    // The api.test certificate lists IP:127.0.0.1; a check against the address would accept it.
    const server = await backend({ host: '127.0.0.1' })
    const pinned = client({ 'evil.example': ['127.0.0.1'] }, { connect: { ca: pki.ca } })
    const error = await failure(() => pinned.request(`https://evil.example:${server.port}/hello`))
    expect(error).toBeInstanceOf(ConnectError)
    expect(causeCode(error)).toBe('ERR_TLS_CERT_ALTNAME_INVALID')
    expect(server.requests).toBe(0)
  })

  it('passes for the host name on an address the certificate does not list, with the host name as SNI', async () => {
    const server = await backend({ host: '127.0.0.72' }) // not in the certificate
    const named = client({ 'api.test': [server.host] }, { connect: { ca: pki.ca } })
    expect(await (await named.request(`https://api.test:${server.port}/hello`)).body.text()).toBe('hello')
    expect(server.servernames).toEqual(['api.test'])
  })

  it('a certificate for another name (other.test) is refused for api.test', async () => {
    const server = await backend({ host: '127.0.0.73', cert: pki.otherTest })
    const named = client({ 'api.test': [server.host] }, { connect: { ca: pki.ca } })
    const error = await failure(() => named.request(`https://api.test:${server.port}/hello`))
    expect(error).toBeInstanceOf(ConnectError)
    expect(causeCode(error)).toBe('ERR_TLS_CERT_ALTNAME_INVALID')
  })

  it('an IP-literal origin is verified against that IP: 127.0.0.1 passes, 127.0.0.74 does not', async () => {
    const listed = await backend({ host: '127.0.0.1' })
    const unlisted = await backend({ host: '127.0.0.74' })
    const direct = client({}, { connect: { ca: pki.ca } })
    expect(await (await direct.request(`https://127.0.0.1:${listed.port}/hello`)).body.text()).toBe('hello')
    const error = await failure(() => direct.request(`https://127.0.0.74:${unlisted.port}/hello`))
    expect(error).toBeInstanceOf(ConnectError)
    expect(causeCode(error)).toBe('ERR_TLS_CERT_ALTNAME_INVALID')
    expect(String((error as { cause?: { reason?: string } }).cause?.reason)).toContain('IP: 127.0.0.74')
    expect(unlisted.requests).toBe(0)
  })

  it('rejectUnauthorized: false takes effect only where asked: for one origin, not for the others', async () => {
    const lax = await backend({ host: '127.0.0.75' })
    const strict = await backend({ host: '127.0.0.76' })
    const laxOrigin = `https://lax.test:${lax.port}`
    const mixed = client(
      { 'lax.test': [lax.host], 'strict.test': [strict.host] },
      { origins: { [laxOrigin]: { connect: { rejectUnauthorized: false } } } },
    )
    expect(await (await mixed.request(`${laxOrigin}/hello`)).body.text()).toBe('hello')
    expect(await failure(() => mixed.request(`https://strict.test:${strict.port}/hello`))).toBeInstanceOf(ConnectError)
    expect(strict.requests).toBe(0)
    // And for the whole client only when given at the top level.
    const everywhere = client({ 'strict.test': [strict.host] }, { connect: { rejectUnauthorized: false } })
    expect(await (await everywhere.request(`https://strict.test:${strict.port}/hello`)).body.text()).toBe('hello')
  })

  it('the HTTP/1.1 fallback verifies too: unknown CA and wrong host name are refused', async () => {
    let requests = 0
    const server = https.createServer(pki.apiTest, (_req, res) => {
      requests++
      res.end('http/1.1')
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    cleanup.push(() => new Promise<void>((resolve) => server.close(() => resolve())))
    server.on('secureConnection', () => {})
    const { port } = server.address() as AddressInfo
    const good = client({ 'api.test': ['127.0.0.1'] }, { connect: { ca: pki.ca } })
    expect(await (await good.request(`https://api.test:${port}/`)).body.text()).toBe('http/1.1')
    const before = requests
    const unknownCa = client({ 'api.test': ['127.0.0.1'] })
    expect(await failure(() => unknownCa.request(`https://api.test:${port}/`))).toBeDefined()
    const wrongName = client({ 'evil.example': ['127.0.0.1'] }, { connect: { ca: pki.ca } })
    expect(await failure(() => wrongName.request(`https://evil.example:${port}/`))).toBeDefined()
    expect(requests).toBe(before)
    server.closeAllConnections()
  })
})

describe('no header injection', () => {
  it('CR, LF or NUL in a header value or name, a method or a host header: rejected, nothing reaches the server', async () => {
    const server = await backend({ host: '127.0.0.77' })
    const c = client({ 'api.test': [server.host] }, { connect: { ca: pki.ca } })
    const url = `https://api.test:${server.port}/headers`
    // Open the connection first, so "nothing sent" is about the request, not the handshake.
    await (await c.request(url)).body.text()
    const before = server.requests
    const attempts: [string, { headers: unknown }][] = [
      ['value CRLF', { headers: { 'x-a': 'ok\r\nx-injected: 1' } }],
      ['value LF', { headers: { 'x-a': 'ok\nx-injected: 1' } }],
      ['value CR', { headers: { 'x-a': 'ok\rx-injected: 1' } }],
      ['value NUL', { headers: { 'x-a': 'ok\0' } }],
      ['value in a list', { headers: { 'x-a': ['fine', 'bad\r\nx-injected: 1'] } }],
      ['value in pairs', { headers: [['x-a', 'bad\r\nx-injected: 1']] }],
      ['value as a Buffer', { headers: { 'x-a': Buffer.from('bad\r\nx-injected: 1') as never } }],
      ['name CRLF', { headers: { 'x-a\r\nx-injected': '1' } }],
      ['name with a colon', { headers: { 'x-a:': '1' } }],
      ['pseudo-header :path', { headers: { ':path': '/admin' } }],
      ['host CRLF', { headers: { host: 'api.test\r\nx-injected: 1' } }],
      ['authorization CRLF', { headers: { authorization: 'Bearer t\r\nx-injected: 1' } }],
      ['cookie CRLF', { headers: { cookie: 'a=b\r\nx-injected: 1' } }],
    ]
    for (const [name, options] of attempts) {
      const error = await failure(() => c.request(url, options as never))
      expect(error, name).toBeInstanceOf(InvalidHeaderError)
    }
    for (const method of ['GET\r\nX-Injected: 1', 'GET /admin', 'G\0T']) {
      const error = await failure(() => c.request(url, { method }))
      expect(error, JSON.stringify(method)).toBeInstanceOf(DrainpipeError)
    }
    expect(server.requests).toBe(before)
  })

  it('CR or LF in a path never reaches :path (rejected, or removed by the WHATWG URL parser)', async () => {
    const server = await backend({ host: '127.0.0.78' })
    const paths: string[] = []
    server.server.on('stream', (_stream, headers) => paths.push(String(headers[':path'])))
    const c = client({ 'api.test': [server.host] }, { connect: { ca: pki.ca } })
    const base = `https://api.test:${server.port}`
    // In a URL string, WHATWG parsing removes tabs and newlines before drainpipe sees it.
    await failure(() => c.request(`${base}/a\r\nx-injected: 1`))
    // Through the path option or dispatch(), drainpipe itself refuses it.
    const viaOption = await failure(() => c.request(`${base}/`, { path: '/a\r\nx-injected: 1' }))
    expect(viaOption).toBeDefined()
    const viaDispatch = await new Promise<unknown>((resolve) => {
      c.dispatch({ origin: base, path: '/a\r\nx-injected: 1', method: 'GET' }, {
        onRequestStart() {},
        onResponseEnd: () => resolve(undefined),
        onResponseError: (_controller: unknown, error: Error) => resolve(error),
      } as never)
    })
    expect(viaDispatch).toBeInstanceOf(InvalidArgumentError)
    for (const path of paths) expect(path).not.toMatch(/[\r\n\0 ]/)
  })

  it('characters above U+00FF are refused: node:http2 would send only their low byte (U+010D U+010A → CR LF)', async () => {
    const server = await startHostileServer({
      host: '127.0.0.79',
      script: (c) => {
        c.on('stream', (id) => c.write(response(id, 200, 'ok')))
      },
    })
    cleanup.push(() => server.close())
    const c = client({ 'api.test': [server.host] }, { connect: { ca: pki.ca } })
    const error = await failure(() => c.request(`https://api.test:${server.port}/`, { headers: { 'x-a': 'ok\u010d\u010aX-Injected: 1' } }))
    const wire = server.connections.flatMap((connection) => connection.received.filter((f) => f.type === FrameType.HEADERS))
    const injected = wire.some((frame) => frame.payload.includes(Buffer.from('\r\nX-Injected', 'latin1')))
    expect(injected, 'raw CR LF reached the wire inside a header value').toBe(false)
    expect(error).toBeInstanceOf(InvalidHeaderError)
  })

  it('fetch(): Headers with CR or LF are a TypeError, nothing is sent', async () => {
    const server = await backend({ host: '127.0.0.80' })
    const c = client({ 'api.test': [server.host] }, { connect: { ca: pki.ca } })
    await expect(c.fetch(`https://api.test:${server.port}/headers`, { headers: { 'x-a': 'ok\r\nx-injected: 1' } })).rejects.toBeInstanceOf(TypeError)
    expect(server.requests).toBe(0)
  })
})

describe('redirects never carry credentials to another origin', () => {
  const secrets = { authorization: 'Bearer secret', cookie: 'session=secret', 'proxy-authorization': 'Basic c2VjcmV0' }

  /** A (api.test): redirects /go?to=… ; B (localhost): echoes the headers it received. Both names are in the test certificate. */
  async function twoOrigins() {
    const a = await backend({
      host: '127.0.0.81',
      handler: (req, res) => {
        const url = new URL(req.url, 'https://x')
        if (url.pathname !== '/go') return false
        res.writeHead(302, { location: url.searchParams.get('to')! })
        res.end()
      },
    })
    const b = await backend({ host: '127.0.0.82' })
    const c = client({ 'api.test': [a.host], localhost: [b.host] }, { connect: { ca: pki.ca } })
    return { a, b, c, originA: `https://api.test:${a.port}`, originB: `https://localhost:${b.port}` }
  }

  const leaked = (seen: Record<string, unknown>) => Object.keys(secrets).filter((name) => name in seen)

  it('fetch() following a cross-origin redirect drops authorization, cookie and proxy-authorization; same-origin keeps them', async () => {
    const { c, originA, originB } = await twoOrigins()
    const cross = await c.fetch(`${originA}/go?to=${encodeURIComponent(`${originB}/headers`)}`, { headers: secrets })
    expect(cross.url).toBe(`${originB}/headers`)
    expect(leaked((await cross.json()) as Record<string, unknown>)).toEqual([])
    const same = await c.fetch(`${originA}/go?to=${encodeURIComponent(`${originA}/headers`)}`, { headers: secrets })
    const seen = (await same.json()) as Record<string, unknown>
    expect(seen.authorization).toBe(secrets.authorization)
    expect(seen.cookie).toBe(secrets.cookie)
  })

  it('the same host on another port is another origin: credentials dropped', async () => {
    const { a, c } = await twoOrigins()
    const samePort = `https://api.test:${a.port}`
    const otherPort = await backend({ host: a.host }) // same address and name, another port
    const res = await c.fetch(`${samePort}/go?to=${encodeURIComponent(`https://api.test:${otherPort.port}/headers`)}`, { headers: secrets })
    expect(res.url).toBe(`https://api.test:${otherPort.port}/headers`)
    expect(leaked((await res.json()) as Record<string, unknown>)).toEqual([])
  })

  it("undici's redirect interceptor composed on the client drops them across origins too", async () => {
    const { c, originA, originB } = await twoOrigins()
    const redirecting = c.compose(interceptors.redirect({ maxRedirections: 3 }))
    const res = await undiciRequest(`${originA}/go?to=${encodeURIComponent(`${originB}/headers`)}`, { dispatcher: redirecting, headers: secrets })
    expect(res.statusCode).toBe(200)
    expect(leaked((await res.body.json()) as Record<string, unknown>)).toEqual([])
  })

  it('request() does not follow redirects by itself: the 302 comes back, nothing goes to the other origin', async () => {
    const { b, c, originA, originB } = await twoOrigins()
    const res = await c.request(`${originA}/go?to=${encodeURIComponent(`${originB}/headers`)}`, { headers: secrets })
    await res.body.text()
    expect(res.statusCode).toBe(302)
    expect(b.requests).toBe(0)
  })
})

describe('credentials in URLs', () => {
  it('user:password@ in a request URL is never sent (no authorization, nothing in :authority)', async () => {
    const server = await backend({ host: '127.0.0.83' })
    const c = client({ 'api.test': [server.host] }, { connect: { ca: pki.ca } })
    const result: Record<string, string> | Error = await c.request(`https://user:hunter2@api.test:${server.port}/headers`).then(
      async (res) => (await res.body.json()) as Record<string, string>,
      (error: unknown) => error as Error,
    )
    if (result instanceof Error) {
      expect(result).toBeInstanceOf(DrainpipeError)
    } else {
      expect(JSON.stringify(result)).not.toContain('hunter2')
      expect(result.authorization).toBeUndefined()
    }
  })
})

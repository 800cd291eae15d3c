/**
 * The mistakes a first user makes, each met with a typed error that names
 * the problem and says what was probably meant: a URL without its scheme,
 * TLS options outside `connect`, a misspelt TLS option, an http:// URL to an
 * HTTP/2-only or a TLS server, and HTTP/1.1 timeouts that name their number.
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Client as UndiciClient, request as undiciRequest } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import {
  Client,
  ConnectionLostError,
  HeadersTimeoutError,
  BodyTimeoutError,
  InvalidArgumentError,
  InvalidOptionError,
  ProtocolError,
  type ClientOptions,
} from '../lib/index.js'
import { fromUndici } from '../lib/errors.js'
import { startBackend, tableLookup } from './helpers/h2-server.js'
import { pki } from './helpers/pki.js'

const HOST = '127.0.0.84'
const cleanup: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

const client = (options: ClientOptions = {}) => {
  const made = new Client(options)
  cleanup.push(() => made.destroy())
  return made
}

const optionError = (options: unknown): InvalidOptionError => {
  try {
    new Client(options as ClientOptions)
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidOptionError)
    return error as InvalidOptionError
  }
  throw new Error(`accepted ${JSON.stringify(options)}`)
}

/** A TLS HTTP/2 backend and an h2c (HTTP/2 without TLS) one, torn down after the test. */
async function backend(tls: boolean) {
  const started = await startBackend({ host: HOST, tls })
  cleanup.push(() => started.close())
  return started
}

/** An HTTP/1.1 server whose handler the test gives; every socket is closed after the test. */
async function http1(handler: (url: string, res: import('node:http').ServerResponse) => void): Promise<string> {
  const server: HttpServer = createHttpServer((req, res) => handler(req.url ?? '/', res))
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve))
  cleanup.push(() => {
    server.closeAllConnections()
    return new Promise((resolve) => server.close(resolve))
  })
  return `http://${HOST}:${(server.address() as AddressInfo).port}`
}

describe('a URL without its scheme', () => {
  it.each([
    ['localhost:8443/x', 'https://localhost:8443/x'],
    ['api.example/x', 'https://api.example/x'],
    ['127.0.0.1:8443/items?page=2', 'https://127.0.0.1:8443/items?page=2'],
    ['//api.example/x', 'https://api.example/x'],
  ])('request(%j) names the URL as given and the missing scheme', async (url, meant) => {
    const error = await client().request(url).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(InvalidArgumentError)
    expect((error as InvalidArgumentError).code).toBe('DRAINPIPE_INVALID_ARGUMENT')
    expect((error as Error).message).toBe(
      `Invalid URL '${url}': the scheme is missing (did you mean '${meant}'? http:// for a server without TLS)`,
    )
  })

  it('stream(), asyncRequest() and an origin option say the same', async () => {
    const drainpipe = client()
    await expect(drainpipe.stream('localhost:8443/x')).rejects.toThrow("Invalid URL 'localhost:8443/x': the scheme is missing")
    await expect(drainpipe.asyncRequest('localhost:8443/x').done).rejects.toThrow("Invalid URL 'localhost:8443/x': the scheme is missing")
    await expect(drainpipe.request({ origin: 'localhost:8443', path: '/x', method: 'GET' })).rejects.toThrow(
      "Invalid origin 'localhost:8443': the scheme is missing (did you mean 'https://localhost:8443'?",
    )
    expect(optionError({ origins: { 'localhost:8443': {} } }).message).toContain(
      "'localhost:8443': the scheme is missing (did you mean 'https://localhost:8443'?",
    )
  })

  it('a URL with another scheme is told the schemes drainpipe speaks', async () => {
    await expect(client().request('ftp://api.example/x')).rejects.toThrow("Invalid URL 'ftp://api.example/x': the scheme must be https: or http:")
  })
})

describe('TLS options', () => {
  it.each([
    [{ ca: pki.ca }, "Unknown option 'ca': TLS options go inside 'connect' (connect: { ca: … })"],
    [{ rejectUnauthorized: false }, "Unknown option 'rejectUnauthorized': TLS options go inside 'connect' (connect: { rejectUnauthorized: … })"],
    [
      { origins: { 'https://api.test': { servername: 'api.test' } } },
      "Unknown option 'origins['https://api.test'].servername': TLS options go inside 'origins['https://api.test'].connect' (origins['https://api.test'].connect: { servername: … })",
    ],
  ])('at the top level, %j points to connect', (options, message) => {
    expect(optionError(options).message).toBe(message)
  })

  it("a word of several options' names gets them all, not the TLS option of that name", () => {
    expect(optionError({ timeout: 5000 }).message).toBe(
      "Unknown option 'timeout' (did you mean 'drainTimeout', 'idleTimeout', 'connectTimeout', 'headersTimeout', 'bodyTimeout'?)",
    )
  })

  it.each([
    [{ connect: { servrname: 'api.test' } }, "Unknown option 'connect.servrname' (did you mean 'connect.servername'?)"],
    [{ connect: { rejectUnauthorised: false } }, "Unknown option 'connect.rejectUnauthorised' (did you mean 'connect.rejectUnauthorized'?)"],
    [{ origins: { 'https://api.test': { connect: { CA: pki.ca } } } }, "Unknown option 'origins['https://api.test'].connect.CA' (did you mean 'origins['https://api.test'].connect.ca'?)"],
    [{ connect: { host: '10.0.0.1' } }, "Option 'connect.host' cannot be set: the URL's host (and 'lookup') decide where to connect"],
    [{ connect: { ALPNProtocols: ['h2'] } }, "Option 'connect.ALPNProtocols' cannot be set: drainpipe offers h2 (and http/1.1) itself"],
  ])('inside connect, %j is rejected by name', (options, message) => {
    expect(optionError(options).message).toBe(message)
  })

  it('the names tls.connect knows are accepted and take effect', async () => {
    const server = await backend(true)
    const url = `https://api.test:${server.port}/hello`
    const { lookup } = tableLookup({ 'api.test': [HOST] })
    const verified = client({ lookup, connect: { ca: pki.ca, minVersion: 'TLSv1.2', servername: 'api.test', rejectUnauthorized: true } })
    expect(await (await verified.request(url)).body.text()).toBe('hello')
    // Without the test CA the same server is refused: the options above were used, not dropped.
    const error = await client({ lookup, connect: { minVersion: 'TLSv1.2' } }).request(url).catch((caught: unknown) => caught)
    expect(error).toMatchObject({ code: 'DRAINPIPE_CONNECT', unprocessed: true })
  })
})

describe('an http:// URL to a server that does not speak HTTP/1.1 in plain text', () => {
  it('an HTTP/2-only (h2c) server without h2c: true is a ProtocolError that names the option', async () => {
    const server = await backend(false)
    const origin = `http://${HOST}:${server.port}`
    const error = await client().request(`${origin}/hello`).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(ProtocolError)
    expect(error).toMatchObject({ code: 'DRAINPIPE_PROTOCOL', unprocessed: false })
    expect((error as Error).message).toMatch(/did not answer in HTTP\/1\.1 \(.+\): if it speaks only HTTP\/2 without TLS \(h2c\), set the option h2c: true$/)
    // And the option is what was missing.
    expect(await (await client({ h2c: true }).request(`${origin}/hello`)).body.text()).toBe('hello')
  })

  it('a TLS server closes without a byte: a ConnectionLostError', async () => {
    const server = await backend(true)
    const error = await client().request(`http://${HOST}:${server.port}/hello`).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(ConnectionLostError)
    expect(error).toMatchObject({ code: 'DRAINPIPE_CONNECTION_LOST' })
  })
})

/**
 * undici's own errors from real servers, mapped with what the HTTP/1.1
 * fallback knows of the request (its origin and timeouts).
 */
describe('fromUndici with the HTTP/1.1 fallback’s context', () => {
  const failure = async (origin: string, path: string, timeouts: { headersTimeout?: number; bodyTimeout?: number } = {}) => {
    const dispatcher = new UndiciClient(origin, timeouts)
    cleanup.push(() => dispatcher.destroy())
    return undiciRequest(`${origin}${path}`, { dispatcher })
      .then((response) => response.body.text())
      .then(
        () => {
          throw new Error(`${origin}${path} answered`)
        },
        (error: unknown) => error,
      )
  }
  const context = (origin: string) => ({ origin, headersTimeout: 300_000, bodyTimeout: 300_000 })

  it('an HTTP/2-only server: the message names the origin', async () => {
    const origin = `http://${HOST}:${(await backend(false)).port}`
    const error = fromUndici(await failure(origin, '/hello'), context(origin))
    expect(error).toBeInstanceOf(ProtocolError)
    expect((error as Error).message).toMatch(
      new RegExp(`^${origin.replace(/\./g, '\\.')} did not answer in HTTP/1\\.1 \\(.+\\): if it speaks only HTTP/2 without TLS \\(h2c\\), set the option h2c: true$`),
    )
  })

  it('a TLS server: the message says the server may speak TLS and gives the https:// URL', async () => {
    const { port } = await backend(true)
    const origin = `http://${HOST}:${port}`
    const error = fromUndici(await failure(origin, '/hello'), context(origin))
    expect(error).toBeInstanceOf(ConnectionLostError)
    expect((error as Error).message).toBe(
      `The connection was lost with the request in flight: other side closed; the server closed without answering a byte: if it speaks TLS, the URL is https://${HOST}:${port}`,
    )
  })

  it('a plain HTTP/1.1 server that answers and then drops the connection gets no TLS hint', async () => {
    const origin = await http1((_url, res) => {
      res.writeHead(200, { 'content-length': '10' })
      res.write('half', () => res.socket?.destroy())
    })
    const error = fromUndici(await failure(origin, '/'), context(origin))
    expect(error).toBeInstanceOf(ConnectionLostError)
    expect((error as Error).message).not.toContain('TLS')
  })

  it('headers and body timeouts name their number', async () => {
    const origin = await http1((url, res) => {
      if (url === '/body') {
        res.writeHead(200, { 'content-length': '10' })
        res.write('half')
      }
      // '/headers' is never answered.
    })
    const headers = fromUndici(await failure(origin, '/headers', { headersTimeout: 50 }), { ...context(origin), headersTimeout: 50 })
    expect(headers).toBeInstanceOf(HeadersTimeoutError)
    expect((headers as Error).message).toBe('No response headers within 50 ms (headersTimeout)')
    const body = fromUndici(await failure(origin, '/body', { bodyTimeout: 50 }), { ...context(origin), bodyTimeout: 50 })
    expect(body).toBeInstanceOf(BodyTimeoutError)
    expect((body as Error).message).toBe('No response body data within 50 ms (bodyTimeout)')
  })

  it('through the client, an HTTP/1.1 timeout is typed and names its option', async () => {
    const origin = await http1(() => {})
    const error = await client().request(`${origin}/`, { headersTimeout: 50 }).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(HeadersTimeoutError)
    expect((error as Error).message).toBe('No response headers within 50 ms (headersTimeout)')
  })

  it('through the client, an http:// URL to a TLS port says the server may speak TLS', async () => {
    const { port } = await backend(true)
    const error = await client().request(`http://${HOST}:${port}/hello`).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(ConnectionLostError)
    expect((error as Error).message).toBe(
      `The connection was lost with the request in flight: other side closed; the server closed without answering a byte: if it speaks TLS, the URL is https://${HOST}:${port}`,
    )
  })

  it('through the client, an http:// URL to an h2c-only server names h2c: true', async () => {
    const { port } = await backend(false)
    const origin = `http://${HOST}:${port}`
    const error = await client().request(`${origin}/hello`).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(ProtocolError)
    expect((error as Error).message).toMatch(new RegExp(`^${origin.replace(/\./g, '\\.')} did not answer in HTTP/1\\.1`))
  })
})

describe('stats() as a user reads it', () => {
  it('a request whose body was read is no longer in flight, at once; ages are whole milliseconds', async () => {
    const server = await backend(true)
    const c = client({ connect: { ca: pki.ca }, lookup: tableLookup({ 'api.test': [HOST] }).lookup })
    const origin = `https://api.test:${server.port}`
    const res = await c.request(`${origin}/hello`)
    expect(c.stats().origins[origin]!.pools[0]!.inFlight).toBe(1)
    expect(await res.body.text()).toBe('hello')
    // No tick in between: what the caller sees right after its request ended.
    const [pool] = c.stats().origins[origin]!.pools
    expect(pool!.inFlight).toBe(0)
    expect(Number.isInteger(pool!.age)).toBe(true)
  })
})

/**
 * Property tests (fast-check) over what callers hand drainpipe: URLs, header
 * names and values (CR, LF, NUL, non-ASCII included), methods, bodies,
 * request options and client options. The contract: drainpipe either
 * succeeds or fails with a `DrainpipeError` (for `fetch()`, the WHATWG
 * `TypeError`); nothing else is thrown, nothing crashes the process, and
 * nothing with CR, LF or NUL in a header ever reaches the server.
 *
 * Runs are bounded (numRuns) and reproducible: the seed is printed, and
 * `FC_SEED=<seed>` replays a run.
 */
import { Readable } from 'node:stream'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client, DrainpipeError, InvalidArgumentError, InvalidHeaderError, InvalidOptionError } from '../lib/index.js'
import { parseOrigin, toDispatchOptions } from '../lib/request.js'
import { startBackend, type Backend } from './helpers/h2-server.js'
import { pki } from './helpers/pki.js'

const HOST = '127.0.0.61'
const seed = Number(process.env.FC_SEED ?? Math.floor(Math.random() * 2 ** 31))
const NUM_RUNS = Number(process.env.FC_RUNS ?? 200)
const params = { seed, numRuns: NUM_RUNS }

let backend: Backend
let client: Client
let base: string

/** Every name resolves to the one loopback backend: random host names never leave the machine. */
const loopbackLookup = (
  _hostname: string,
  _options: { all: true },
  callback: (error: NodeJS.ErrnoException | null, addresses: { address: string; family: number }[]) => void,
) => queueMicrotask(() => callback(null, [{ address: HOST, family: 4 }]))

beforeAll(async () => {
  console.log(`fast-check seed ${seed} (replay with FC_SEED=${seed}), ${NUM_RUNS} runs per property`)
  backend = await startBackend({ host: HOST })
  client = new Client({
    connect: { ca: pki.ca },
    lookup: loopbackLookup,
    connectTimeout: 2000,
    headersTimeout: 3000,
    bodyTimeout: 3000,
    retries: 1,
  })
  base = `https://api.test:${backend.port}`
})

afterAll(async () => {
  await client.destroy()
  await backend.close()
})

// ── Arbitraries ────────────────────────────────────────────────────────────

// U+010D U+010A U+0100: node:http2 sends a header value's low bytes, so these would go out as CR, LF, NUL.
const special = fc.constantFrom('\r', '\n', '\r\n', '\0', ' ', '\t', ':', 'é', '✓', '\u0085', '\u2028', '😀', '\x7f', '\x01', '"', ',', ';', '%0d%0a', '\ud800', '\u010d\u010a', '\u0100')
const spiced = fc.tuple(fc.string({ maxLength: 8 }), special, fc.string({ maxLength: 8 })).map(([a, s, b]) => `${a}${s}${b}`)
const text = fc.oneof(
  fc.string({ maxLength: 16 }),
  fc.string({ unit: 'binary', maxLength: 16 }),
  spiced,
  fc.constantFrom('', ' ', 'a\r\nX-Injected: 1', 'v\0', '\n', 'x'.repeat(10_000)),
)
const token = fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,20}$/)
const headerName = fc.oneof(
  token,
  text,
  fc.constantFrom('Host', 'host', ':path', ':authority', 'connection', 'te', 'transfer-encoding', 'content-length', 'cookie', 'set-cookie', 'authorization', 'x-a\r\nx-b', 'upgrade', 'keep-alive', '__proto__', 'constructor'),
)
const headerValue = fc.oneof(
  text,
  fc.integer(),
  fc.double(),
  fc.array(text, { maxLength: 3 }),
  fc.constant(undefined),
  fc.constant(null),
  fc.uint8Array({ maxLength: 8 }).map((bytes) => Buffer.from(bytes)),
  fc.object({ maxDepth: 1 }),
  fc.boolean(),
)
const headersArb = fc.oneof(
  fc.dictionary(headerName, headerValue, { maxKeys: 4 }),
  fc.array(fc.tuple(headerName, headerValue), { maxLength: 4 }),
  fc.array(fc.oneof(headerName, text), { maxLength: 5 }),
  fc.constant(null),
  fc.constant(undefined),
  fc.anything({ maxDepth: 1 }),
)
const methodArb = fc.oneof(fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'CONNECT', 'TRACE', 'get', 'QUERY'), text)
const failingStream = () =>
  new Readable({
    read() {
      this.destroy(new Error('source failed'))
    },
  })
const bodyArb = fc.oneof(
  fc.constant(undefined),
  fc.constant(null),
  text,
  fc.uint8Array({ maxLength: 64 }),
  fc.uint8Array({ maxLength: 64 }).map((bytes) => bytes.buffer),
  fc.integer(),
  fc.object({ maxDepth: 1 }),
  fc.array(fc.integer(), { maxLength: 3 }),
  text.map((t) => new Blob([t])),
  fc.dictionary(fc.string({ maxLength: 4 }), fc.string({ maxLength: 4 }), { maxKeys: 3 }).map((d) => new URLSearchParams(d)),
  fc.array(text, { maxLength: 3 }).map((chunks) => Readable.from(chunks)),
  fc.constant(null).map(() => failingStream()),
)
const pathArb = fc.oneof(fc.webPath(), text.map((t) => `/${t}`), text, fc.webQueryParameters().map((q) => `/headers?${q}`))
const httpsUrlArb = fc.oneof(
  pathArb.map((path) => `${base}${path}`),
  fc.webUrl({ validSchemes: ['https'], withQueryParameters: true, withFragments: true }),
  text,
  fc.constantFrom('', 'https://', 'https://api.test:0/', 'https://[::1]:1/', 'file:///etc/passwd', 'javascript:alert(1)', 'ftp://api.test/'),
  fc.constantFrom('/\r\nX: y', '/a b', '/%00', '/?\n', '#frag', '/..%2f..%2f').map((suffix) => `${base}${suffix}`),
)

const anyOptionValue = fc.oneof(fc.anything({ maxDepth: 1 }), fc.constantFrom(-1, NaN, Infinity, 2 ** 53, '10', null, true))

const requestOptionsArb = fc.oneof(
  fc.record(
    {
      method: methodArb,
      headers: headersArb,
      body: bodyArb,
      headersTimeout: anyOptionValue,
      bodyTimeout: anyOptionValue,
      query: fc.oneof(fc.dictionary(text, fc.oneof(text, fc.integer(), fc.array(text, { maxLength: 2 }))), anyOptionValue),
      path: fc.oneof(pathArb, anyOptionValue),
      signal: anyOptionValue,
      opaque: fc.anything({ maxDepth: 1 }),
      throwOnError: fc.boolean(),
      idempotent: anyOptionValue,
      blocking: anyOptionValue,
      reset: anyOptionValue,
      highWaterMark: anyOptionValue,
      maxRedirections: anyOptionValue,
      responseHeaders: anyOptionValue,
    },
    { requiredKeys: [] },
  ),
  fc.anything({ maxDepth: 1 }),
)

// ── Helpers ────────────────────────────────────────────────────────────────

type Settled = { ok: true; value: unknown } | { ok: false; error: unknown; sync: boolean }

/** Calls `fn` and settles it, never waiting past `limit`: a hang is a failure too. */
async function settle(fn: () => unknown, limit = 8000): Promise<Settled> {
  let pending: unknown
  try {
    pending = fn()
  } catch (error) {
    return { ok: false, error, sync: true }
  }
  let timer: NodeJS.Timeout | undefined
  try {
    const value = await Promise.race([
      Promise.resolve(pending),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new HangError(limit)), limit)
      }),
    ])
    return { ok: true, value }
  } catch (error) {
    if (error instanceof HangError) throw error
    return { ok: false, error, sync: false }
  } finally {
    clearTimeout(timer)
  }
}

class HangError extends Error {
  constructor(limit: number) {
    super(`HANG: nothing settled within ${limit} ms`)
  }
}

const describeError = (error: unknown) =>
  error instanceof Error ? `${error.constructor.name} ${(error as { code?: string }).code ?? ''}: ${error.message}` : String(error)

/** The contract: a failure is a DrainpipeError. */
function assertTyped(error: unknown): void {
  if (!(error instanceof DrainpipeError)) throw new Error(`not a DrainpipeError: ${describeError(error)}`)
}

/** Reads a response body to the end; a failure there must be typed too. */
async function consume(response: unknown): Promise<void> {
  const body = (response as { body?: { text(): Promise<string> } }).body
  if (!body) return
  const read = await settle(() => body.text())
  if (!read.ok) assertTyped(read.error)
}

/** CR, LF or NUL, or a character whose low byte is one of them (what node:http2 would put on the wire). */
const wireUnsafe = (text: string): boolean => [...text].some((char) => {
  for (let i = 0; i < char.length; i++) {
    const low = char.charCodeAt(i) & 0xff
    if (low === 0x0d || low === 0x0a || low === 0x00) return true
  }
  return false
})

const hasForbiddenChar = (value: unknown): boolean => {
  if (typeof value === 'string') return wireUnsafe(value)
  if (Array.isArray(value)) return value.some(hasForbiddenChar)
  if (Buffer.isBuffer(value)) return /[\r\n\0]/.test(value.toString('latin1'))
  return false
}

// ── Properties ─────────────────────────────────────────────────────────────

describe('request URLs: the fast path for known origins', () => {
  // Paths mixing characters URL parsing keeps with ones it rewrites (dot segments, %, quotes, #, \\, spaces).
  const pathArb = fc
    .array(fc.constantFrom('/', 'a', 'Z', '0', '-', '_', '.', '~', '?', '&', '=', '%', '%2e', "'", '"', '#', '\\', ' ', '|', '{', '@', ':', '..', '//', 'é', '+', ';', ',', '!', '$', '*', '(', ')'), { maxLength: 12 })
    .map((parts) => `/${parts.join('')}`)
  const originArb = fc.constantFrom('https://api.test', 'https://api.test:8443', 'http://api.test:8080', 'https://API.test', 'https://api.test:443', 'https://user@api.test', 'https://127.0.0.61:9')

  it('gives what WHATWG URL parsing gives, for seen and unseen origins', () => {
    parseOrigin('https://api.test')
    parseOrigin('https://api.test:8443')
    parseOrigin('http://api.test:8080')
    fc.assert(
      fc.property(originArb, pathArb, (origin, path) => {
        const url = `${origin}${path}`
        let parsed: URL
        try {
          parsed = new URL(url)
        } catch {
          return
        }
        const { origin: split, path: splitPath } = toDispatchOptions(url, undefined)
        expect({ origin: split, path: splitPath }).toEqual({ origin: parsed.origin, path: `${parsed.pathname}${parsed.search}` })
      }),
      { ...params, numRuns: NUM_RUNS * 5 },
    )
  })
})

describe('request(), stream(), asyncRequest(), fetch() over arbitrary input', () => {
  it('request(url, options): success or a DrainpipeError, never anything else', async () => {
    await fc.assert(
      fc.asyncProperty(httpsUrlArb, requestOptionsArb, async (url, options) => {
        const result = await settle(() => client.request(url, options as never))
        if (result.ok) await consume(result.value)
        else assertTyped(result.error)
      }),
      params,
    )
  })

  it('stream(url, options): success or a DrainpipeError', async () => {
    await fc.assert(
      fc.asyncProperty(httpsUrlArb, requestOptionsArb, async (url, options) => {
        const result = await settle(() => client.stream(url, options as never))
        if (!result.ok) return assertTyped(result.error)
        const body = (result.value as { body: Readable }).body
        const read = await settle(async () => {
          for await (const _chunk of body) {
            // drain
          }
        })
        if (!read.ok) assertTyped(read.error)
      }),
      { ...params, numRuns: Math.ceil(NUM_RUNS / 2) },
    )
  })

  it('asyncRequest(url, options): never throws but a DrainpipeError; the handle settles with a DrainpipeError or success', async () => {
    await fc.assert(
      fc.asyncProperty(httpsUrlArb, requestOptionsArb, async (url, options) => {
        let handle
        try {
          handle = client.asyncRequest(url, options as never)
        } catch (error) {
          return assertTyped(error)
        }
        const result = await settle(() => handle.done)
        if (!result.ok) assertTyped(result.error)
      }),
      { ...params, numRuns: Math.ceil(NUM_RUNS / 2) },
    )
  })

  it('fetch(url, init): a Response, or the WHATWG TypeError (or a DrainpipeError), never anything else', async () => {
    const initArb = fc.record(
      { method: methodArb, headers: headersArb, body: bodyArb, redirect: fc.constantFrom('follow', 'manual', 'error'), duplex: fc.constant('half') },
      { requiredKeys: [] },
    )
    await fc.assert(
      fc.asyncProperty(httpsUrlArb, initArb, async (url, init) => {
        const result = await settle(() => client.fetch(url, init as never))
        if (!result.ok) {
          if (!(result.error instanceof TypeError) && !(result.error instanceof DrainpipeError)) {
            throw new Error(`fetch rejected with ${describeError(result.error)}`)
          }
          return
        }
        const read = await settle(() => (result.value as Response).arrayBuffer())
        if (!read.ok && !(read.error instanceof TypeError) && !(read.error instanceof DrainpipeError)) {
          throw new Error(`fetch body failed with ${describeError(read.error)}`)
        }
      }),
      { ...params, numRuns: Math.ceil(NUM_RUNS / 2) },
    )
  })

  it('dispatch(options, handler): never throws; errors reach the handler as DrainpipeErrors', async () => {
    const dispatchArb = fc.record(
      { origin: fc.oneof(fc.constant(base), text, fc.webUrl(), anyOptionValue), path: fc.oneof(pathArb, anyOptionValue), method: methodArb, headers: headersArb, body: bodyArb },
      { requiredKeys: [] },
    )
    await fc.assert(
      fc.asyncProperty(dispatchArb, async (options) => {
        let failure: unknown
        let settled!: () => void
        const done = new Promise<void>((resolve) => (settled = resolve))
        const handler = {
          onRequestStart() {},
          onResponseStart() {},
          onResponseData() {},
          onResponseEnd: () => settled(),
          onResponseError: (_controller: unknown, error: unknown) => {
            failure = error
            settled()
          },
        }
        const result = await settle(() => {
          client.dispatch(options as never, handler as never)
          return done
        })
        if (!result.ok) assertTyped(result.error)
        if (failure !== undefined) assertTyped(failure)
      }),
      params,
    )
  })
})

describe('headers: injection and validation', () => {
  it('a header value or name that would put CR, LF or NUL on the wire is rejected with InvalidHeaderError and never reaches the server', async () => {
    await fc.assert(
      fc.asyncProperty(headerName, fc.oneof(text, fc.array(text, { maxLength: 3 })), async (name, value) => {
        const before = backend.requests
        const result = await settle(() => client.request(`${base}/headers`, { headers: { [name]: value } }))
        if (result.ok) await consume(result.value)
        if (hasForbiddenChar(name) || hasForbiddenChar(value)) {
          expect(result.ok).toBe(false)
          if (!result.ok) expect(result.error).toBeInstanceOf(InvalidHeaderError)
          expect(backend.requests).toBe(before)
        } else if (!result.ok) {
          expect(result.error).toBeInstanceOf(InvalidHeaderError)
        }
      }),
      params,
    )
  })

  it('a valid token name with a printable value arrives as sent (lower-cased name, trimmed value)', async () => {
    const printable = fc.stringMatching(/^[\x20-\x7e]{0,40}$/)
    const reserved = /^(host|connection|keep-alive|proxy-connection|transfer-encoding|upgrade|http2-settings|te|content-length)$/i
    await fc.assert(
      fc.asyncProperty(
        token.filter((name) => !reserved.test(name)),
        printable,
        async (name, value) => {
          const res = await client.request(`${base}/headers`, { headers: { [name]: value } })
          const seen = (await res.body.json()) as Record<string, string>
          const key = name.toLowerCase()
          expect(Object.hasOwn(seen, key) ? seen[key] : undefined).toBe(value.trim())
        },
      ),
      params,
    )
  })

  it('methods: a token is sent as is; anything else is InvalidArgumentError before the wire', async () => {
    const methodToken = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
    await fc.assert(
      fc.asyncProperty(methodArb, async (method) => {
        const before = backend.requests
        const result = await settle(() => client.request(`${base}/hello`, { method }))
        if (result.ok) {
          await consume(result.value)
          expect(methodToken.test(method)).toBe(true)
        } else {
          assertTyped(result.error)
          if (!methodToken.test(method) || method === 'CONNECT') {
            expect(result.error).toBeInstanceOf(InvalidArgumentError)
            expect(backend.requests).toBe(before)
          }
        }
      }),
      params,
    )
  })
})

describe('client options', () => {
  const known = [
    'count', 'maxConnectionAge', 'maxConnectionAgeJitter', 'drainTimeout', 'recycleCooldown', 'keepAlive', 'idleTimeout',
    'connectTimeout', 'maxRequestsPerConnection', 'retries', 'lookup', 'connect', 'h2c', 'maxQueue', 'headersTimeout',
    'bodyTimeout', 'reconnectBackoff', 'origins', 'clock', 'random', 'retryBufferSize',
  ]
  const optionValue = fc.oneof(
    anyOptionValue,
    fc.integer({ min: -10, max: 100_000 }),
    fc.record({ interval: anyOptionValue, timeout: anyOptionValue, whenIdle: anyOptionValue }, { requiredKeys: [] }),
    fc.record({ base: anyOptionValue, max: anyOptionValue }, { requiredKeys: [] }),
    fc.dictionary(fc.oneof(text, fc.constantFrom('https://api.test', 'http://x:1', 'https://a.test:443/path')), fc.anything({ maxDepth: 1 }), { maxKeys: 2 }),
  )
  const optionsArb = fc.oneof(
    fc.dictionary(fc.oneof(fc.constantFrom(...known), text), optionValue, { maxKeys: 5 }),
    fc.anything({ maxDepth: 2 }),
  )

  it('new Client(options): constructs, or throws InvalidOptionError; never anything else', async () => {
    await fc.assert(
      fc.asyncProperty(optionsArb, async (options) => {
        let created: Client | undefined
        try {
          created = new Client(options as never)
        } catch (error) {
          if (!(error instanceof InvalidOptionError)) throw new Error(`new Client threw ${describeError(error)}`)
          return
        }
        const closed = await settle(() => created.close(), 3000)
        if (!closed.ok) assertTyped(closed.error)
      }),
      { ...params, numRuns: NUM_RUNS * 2 },
    )
  })
})

describe('known counterexamples (found by the properties above, kept as plain cases)', () => {
  const cases: [string, () => unknown, (new (...args: never[]) => Error)?][] = [
    ['request(url, null)', () => client.request(`${base}/hello`, null as never)],
    ['asyncRequest(url, null)', () => client.asyncRequest(`${base}/hello`, null as never).done],
    ['request() with a path option containing CR LF', () => client.request(`${base}/hello`, { path: '/a\r\nb' })],
    ['request() with a non-signal signal', () => client.request(`${base}/hello`, { signal: 5 as never })],
    ['request() with a query value that has no string form', () => client.request(`${base}/hello`, { query: { a: Object.create(null) } })],
    ['request() with a highWaterMark of -1', () => client.request(`${base}/hello`, { highWaterMark: -1 } as never)],
    ['request() with a non-function onInfo', () => client.request(`${base}/hello`, { onInfo: 5 } as never)],
    ['request() with method CONNECT', () => client.request(`${base}/hello`, { method: 'CONNECT' })],
    ['request(5)', () => client.request(5 as never)],
    ['stream() with a non-signal signal', () => client.stream(`${base}/hello`, { signal: 5 as never })],
    ['dispatch() to an http:// origin that refuses connections (HTTP/1.1 fallback)', () =>
      new Promise((resolve, reject) => {
        client.dispatch({ origin: 'http://api.test:1', path: '/', method: 'GET' }, {
          onRequestStart() {},
          onResponseEnd: resolve,
          onResponseError: (_controller: unknown, error: Error) => reject(error),
        } as never)
      })],
    ['request() to an http:// origin that refuses connections (HTTP/1.1 fallback)', () => client.request('http://api.test:1/')],
    ['a header value U+010D U+010A (sent as CR LF by node:http2)', () => client.request(`${base}/hello`, { headers: { 'x-v': 'a\u010d\u010aX-Injected: 1' } }), InvalidHeaderError],
    ['a header value U+0100 (sent as NUL by node:http2)', () => client.request(`${base}/hello`, { headers: { 'x-v': 'a\u0100b' } }), InvalidHeaderError],
  ]
  for (const [name, call, Expected = DrainpipeError] of cases) {
    it(`${name}: rejects with ${Expected.name}`, async () => {
      const result = await settle(call)
      expect(result.ok).toBe(false)
      if (!result.ok) expect(result.error, describeError(result.error)).toBeInstanceOf(Expected)
    })
  }
})

describe('known counterexamples: header names that are Object.prototype properties', () => {
  const cases: [string, { headers: unknown }][] = [
    ['constructor', { headers: { constructor: 'x' } }],
    ['__proto__ (as a pair)', { headers: [['__proto__', 'x']] }],
    ['toString', { headers: { toString: 'x' } }],
  ]
  for (const [name, options] of cases) {
    it(`a header named ${name} arrives with exactly the value sent`, async () => {
      const res = await client.request(`${base}/headers`, options as never)
      const seen = (await res.body.json()) as Record<string, string>
      const key = name.split(' ')[0]!.toLowerCase()
      expect(Object.hasOwn(seen, key) ? seen[key] : undefined).toBe('x')
    })
  }
})

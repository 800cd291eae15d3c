/**
 * Example: testing code that uses drainpipe, with msw.
 *
 * msw's `setupServer` patches `globalThis.fetch` and `node:http`, but drainpipe
 * talks HTTP/2 through `node:http2`, which msw cannot see. `createTestClient`
 * from `drainpipe-http2/testing` is a drainpipe `Client` that asks msw handlers
 * first, so `request()`, `stream()` and `fetch()` are mocked like the rest.
 * Give it your msw server and `server.use()` overrides apply to it too.
 *
 * In your project the imports are `drainpipe-http2` and `drainpipe-http2/testing`; here
 * they point at the sources. It is part of the suite (vitest.config.ts).
 *
 * Run: npx vitest run examples/testing-with-msw.test.ts
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { http, HttpResponse } from 'msw'
import { setupServer } from 'msw/node'
import type { Client } from '../lib/index.js' // from 'drainpipe-http2'
import { createTestClient } from '../lib/testing.js' // from 'drainpipe-http2/testing'

// ── The code under test: it is given a drainpipe Client ──────────────────
// (in production: new Client({ maxConnectionAge: 5 * 60_000 }))

interface User {
  id: number
  name: string
}

class Users {
  constructor(
    readonly client: Client,
    readonly base = 'https://users.internal',
  ) {}

  async get(id: number): Promise<User | undefined> {
    const { statusCode, body } = await this.client.request(`${this.base}/users/${id}`, { headers: { accept: 'application/json' } })
    if (statusCode === 404) {
      await body.dump()
      return undefined
    }
    if (statusCode !== 200) throw new Error(`users: ${statusCode} ${await body.text()}`)
    return (await body.json()) as User
  }

  async rename(id: number, name: string): Promise<User> {
    const response = await this.client.fetch(`${this.base}/users/${id}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name }),
    })
    return (await response.json()) as User
  }

  /** Newline-delimited JSON, read as it arrives. */
  async *all(): AsyncGenerator<User> {
    const { body } = await this.client.stream(`${this.base}/users`)
    let rest = ''
    for await (const chunk of body) {
      const lines = (rest + chunk.toString()).split('\n')
      rest = lines.pop()!
      for (const line of lines) if (line) yield JSON.parse(line) as User
    }
  }
}

// ── The tests ────────────────────────────────────────────────────────────

const ada: User = { id: 1, name: 'Ada' }

const server = setupServer(
  http.get('https://users.internal/users/:id', ({ params }) =>
    params.id === '1' ? HttpResponse.json(ada) : HttpResponse.json({ error: 'no such user' }, { status: 404 }),
  ),
  http.patch('https://users.internal/users/:id', async ({ params, request }) => {
    const { name } = (await request.json()) as { name: string }
    return HttpResponse.json({ id: Number(params.id), name })
  }),
  http.get('https://users.internal/users', () => {
    const encoder = new TextEncoder()
    const stream = new ReadableStream({
      start(controller) {
        // Split mid-line on purpose: the code under test must reassemble lines.
        controller.enqueue(encoder.encode('{"id":1,"name":"Ada"}\n{"id":2,'))
        controller.enqueue(encoder.encode('"name":"Grace"}\n'))
        controller.close()
      },
    })
    return new HttpResponse(stream, { headers: { 'content-type': 'application/x-ndjson' } })
  }),
)

// Unhandled requests fail the test (the default); { onUnhandledRequest: 'bypass' } sends them for real.
const client = createTestClient({ handlers: server })
const users = new Users(client)

// listen() is only needed for code that also uses globalThis.fetch or node:http; createTestClient works without it.
beforeAll(() => server.listen({ onUnhandledRequest: 'error' }))
afterEach(() => server.resetHandlers())
afterAll(async () => {
  server.close()
  await client.close()
})

describe('example: testing drainpipe code with msw', () => {
  it('request(): reads a user, and a missing one', async () => {
    expect(await users.get(1)).toEqual(ada)
    expect(await users.get(2)).toBeUndefined()
  })

  it('server.use(): a per-test override, here a server error', async () => {
    server.use(http.get('https://users.internal/users/:id', () => new HttpResponse('overloaded', { status: 503 })))
    await expect(users.get(1)).rejects.toThrow('users: 503 overloaded')
  })

  it('fetch(): the handler sees the JSON body', async () => {
    expect(await users.rename(1, 'Countess')).toEqual({ id: 1, name: 'Countess' })
  })

  it('stream(): a streamed body arrives in chunks', async () => {
    const all: User[] = []
    for await (const user of users.all()) all.push(user)
    expect(all.map((user) => user.name)).toEqual(['Ada', 'Grace'])
  })

  it('the same server still mocks globalThis.fetch', async () => {
    const response = await fetch('https://users.internal/users/1')
    expect(await response.json()).toEqual(ada)
  })
})

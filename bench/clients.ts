/**
 * The clients compared, behind one small interface. Every client talks to
 * the same server over TLS with the same CA, and reads every response body to
 * the end: small bodies the idiomatic way (`text()`), 10 MiB bodies as a
 * stream whose chunks are counted (nobody buffers 10 MiB).
 */
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import http2 from 'node:http2'
import type { Got } from 'got'
import * as undici from 'undici'
import { Client, type ClientOptions } from '../lib/index.js'
import type { ClientName, Target } from './common.js'

export type Method = 'GET' | 'POST'

export interface BenchClient {
  /**
   * One request; reads the whole response body. Resolves with the number of
   * body bytes (or characters, for text), rejects on a status other than 200.
   */
  send(method: Method, path: string, body: Buffer | undefined, large: boolean): Promise<number>
  close(): Promise<void>
  /** drainpipe only: the client itself (for stats). */
  drainpipe?: Client
}

const unexpected = (client: string, status: number) => new Error(`${client}: unexpected status ${status}`)

async function countChunks(body: AsyncIterable<Uint8Array>): Promise<number> {
  let bytes = 0
  for await (const chunk of body) bytes += chunk.length
  return bytes
}

export function drainpipeClient(target: Target, options: ClientOptions = {}): Client {
  return new Client({ connect: { ca: readFileSync(target.caPath) }, h2c: target.origin.startsWith('http:'), ...options })
}

export async function makeClient(name: ClientName, target: Target, drainpipeOptions: ClientOptions = {}): Promise<BenchClient> {
  const ca = readFileSync(target.caPath)
  const { origin } = target
  switch (name) {
    case 'drainpipe request()': {
      const client = drainpipeClient(target, drainpipeOptions)
      return {
        drainpipe: client,
        async send(method, path, body, large) {
          const res = await client.request(`${origin}${path}`, { method, body })
          if (res.statusCode !== 200) {
            await res.body.dump()
            throw unexpected(name, res.statusCode)
          }
          return large ? countChunks(res.body) : (await res.body.text()).length
        },
        close: () => client.close(),
      }
    }
    case 'undici.request + drainpipe': {
      const client = drainpipeClient(target, drainpipeOptions)
      return {
        drainpipe: client,
        async send(method, path, body, large) {
          const res = await undici.request(`${origin}${path}`, { method, body, dispatcher: client })
          if (res.statusCode !== 200) {
            await res.body.dump()
            throw unexpected(name, res.statusCode)
          }
          return large ? countChunks(res.body) : (await res.body.text()).length
        },
        close: () => client.close(),
      }
    }
    case 'drainpipe fetch()': {
      const client = drainpipeClient(target, drainpipeOptions)
      return {
        drainpipe: client,
        async send(method, path, body, large) {
          const res = await client.fetch(`${origin}${path}`, { method, body })
          if (res.status !== 200) {
            await res.body?.cancel()
            throw unexpected(name, res.status)
          }
          return large ? countChunks(res.body!) : (await res.text()).length
        },
        close: () => client.close(),
      }
    }
    case 'node:http2 (raw)': {
      // One session, no bookkeeping at all: the lower bound of overhead.
      const session = http2.connect(origin, { ca })
      session.on('error', () => {})
      await once(session, 'remoteSettings')
      return {
        send(method, path, body, large) {
          return new Promise<number>((resolve, reject) => {
            const headers: http2.OutgoingHttpHeaders = { ':method': method, ':path': path }
            if (body !== undefined) headers['content-length'] = body.length
            const stream = session.request(headers, { endStream: body === undefined })
            if (body !== undefined) stream.end(body)
            let status = 0
            let bytes = 0
            const chunks: Buffer[] = []
            stream.on('response', (h) => {
              status = Number(h[':status'])
            })
            stream.on('data', (chunk: Buffer) => {
              bytes += chunk.length
              if (!large) chunks.push(chunk)
            })
            stream.on('end', () => {
              if (status !== 200) reject(unexpected(name, status))
              else resolve(large ? bytes : Buffer.concat(chunks).toString('utf8').length)
            })
            stream.on('error', reject)
          })
        },
        async close() {
          await new Promise<void>((resolve) => session.close(resolve))
        },
      }
    }
    case 'undici Client H2': {
      const client = new undici.Client(origin, { allowH2: true, pipelining: 100, connect: { ca } })
      return {
        async send(method, path, body, large) {
          const res = await client.request({ method, path, body })
          if (res.statusCode !== 200) {
            await res.body.dump()
            throw unexpected(name, res.statusCode)
          }
          return large ? countChunks(res.body) : (await res.body.text()).length
        },
        close: () => client.close(),
      }
    }
    case 'undici.fetch H2': {
      // pipelining: 100 so the Agent multiplexes on one connection as the
      // others do (with undici's default of 1 it opens a connection per
      // concurrent request).
      const agent = new undici.Agent({ allowH2: true, pipelining: 100, connect: { ca } })
      return {
        async send(method, path, body, large) {
          const res = await undici.fetch(`${origin}${path}`, { method, body, dispatcher: agent })
          if (res.status !== 200) {
            await res.body?.cancel()
            throw unexpected(name, res.status)
          }
          return large ? countChunks(res.body!) : (await res.text()).length
        },
        close: () => agent.close(),
      }
    }
    case 'got + http2-wrapper': {
      // Loaded only in got's own child, so other clients' heaps and start-up do not carry it.
      const { default: got } = await import('got')
      const { default: http2wrapper } = await import('http2-wrapper')
      const agent = new http2wrapper.Agent()
      const client: Got = got.extend({
        http2: true,
        agent: { http2: agent as never },
        https: { certificateAuthority: ca },
        retry: { limit: 0 },
        throwHttpErrors: false,
      })
      return {
        async send(method, path, body, large) {
          const url = `${origin}${path}`
          if (large && method === 'GET') {
            const stream = client.stream(url, { method })
            const [response] = (await once(stream, 'response')) as [{ statusCode: number }]
            if (response.statusCode !== 200) throw unexpected(name, response.statusCode)
            return countChunks(stream)
          }
          const res = await client(url, { method, body })
          if (res.statusCode !== 200) throw unexpected(name, res.statusCode)
          return res.body.length
        },
        async close() {
          agent.destroy()
        },
      }
    }
  }
}

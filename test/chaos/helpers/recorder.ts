/**
 * A plain HTTP/1.1 upstream for proxies under test (nginx, haproxy): it
 * records every POST id it processes, so a test can prove that no POST was
 * lost or processed twice behind the proxy.
 *
 * Routes: GET /hello → "hello"; POST /record?id=ID → records ID, answers ID;
 * GET /bytes?size=N → N bytes of h2-server.ts's pattern(); GET /trailers →
 * "with trailers" chunked, with the trailer `x-checksum: abc` (for proxies
 * that pass trailers on); anything else → 404.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Client } from '../../../lib/index.js'
import { pattern } from '../../helpers/h2-server.js'

export interface Recorder {
  readonly host: string
  readonly port: number
  /** POST ids and how often each was processed. */
  readonly processed: Map<string, number>
  requests: number
  close(): Promise<void>
}

export async function startRecorder(host = '127.0.0.1'): Promise<Recorder> {
  const processed = new Map<string, number>()
  const recorder = { host, port: 0, processed, requests: 0 } as Recorder & { port: number }
  const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    recorder.requests++
    const url = new URL(req.url ?? '/', 'http://x')
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      if (url.pathname === '/hello') {
        res.end('hello')
      } else if (url.pathname === '/record' && req.method === 'POST') {
        const id = url.searchParams.get('id') ?? Buffer.concat(chunks).toString()
        processed.set(id, (processed.get(id) ?? 0) + 1)
        res.end(id)
      } else if (url.pathname === '/bytes') {
        const size = Number(url.searchParams.get('size') ?? 1024)
        res.setHeader('content-length', size)
        res.end(pattern(size))
      } else if (url.pathname === '/trailers') {
        res.setHeader('trailer', 'x-checksum')
        res.write('with trailers')
        res.addTrailers({ 'x-checksum': 'abc' })
        res.end()
      } else {
        res.statusCode = 404
        res.end('not found')
      }
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, host, () => resolve())
  })
  recorder.port = (server.address() as AddressInfo).port
  recorder.close = async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
  return recorder
}

/** Lost and duplicated POSTs: ids the client saw succeed but the upstream never processed, and ids processed more than once. */
export function exactlyOnce(succeeded: Iterable<string>, ...processedMaps: Map<string, number>[]): { lost: string[]; duplicated: string[] } {
  const total = new Map<string, number>()
  for (const map of processedMaps) for (const [id, count] of map) total.set(id, (total.get(id) ?? 0) + count)
  const lost = [...succeeded].filter((id) => !total.has(id))
  const duplicated = [...total].filter(([, count]) => count > 1).map(([id]) => id)
  return { lost, duplicated }
}

/**
 * A `send` for drive() against `base`, a proxy in front of a recorder or a
 * test/helpers/h2-server.ts backend (both answer these routes): even
 * requests GET /hello, odd ones POST /record with the id `p<index>`. Any
 * answer but the expected one fails the request; the id of every POST that
 * succeeded is added to `succeeded`, for exactlyOnce().
 */
export function mixedRequests(client: Client, base: string, succeeded: Set<string>): (index: number) => Promise<void> {
  return async (index) => {
    if (index % 2 === 0) {
      const res = await client.request(`${base}/hello`)
      const body = await res.body.text()
      if (res.statusCode !== 200 || body !== 'hello') throw new Error(`GET: ${res.statusCode} ${body}`)
    } else {
      const id = `p${index}`
      const res = await client.request(`${base}/record?id=${id}`, { method: 'POST', body: id })
      const body = await res.body.text()
      if (res.statusCode !== 200 || body !== id) throw new Error(`POST: ${res.statusCode} ${body}`)
      succeeded.add(id)
    }
  }
}

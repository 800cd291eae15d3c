/**
 * Stand-in for nghttpd when it is not installed (so `npm run bench -- --quick`
 * still exercises the harness): serves the docroot's files over TLS HTTP/2
 * like nghttpd does (a POST reads and discards its body, then gets the file),
 * with the same stream limit and receive windows.
 *
 *   node --import tsx bench/fallback-server.ts DOCROOT PORT KEY CERT
 */
import { readFileSync } from 'node:fs'
import http2 from 'node:http2'
import path from 'node:path'

const [docroot, port, keyPath, certPath] = process.argv.slice(2) as [string, string, string, string]
const files = new Map<string, Buffer>()
const file = (name: string) => {
  let body = files.get(name)
  if (body === undefined) {
    body = readFileSync(path.join(docroot, path.basename(name)))
    files.set(name, body)
  }
  return body
}

const server = http2.createSecureServer({
  key: readFileSync(keyPath),
  cert: readFileSync(certPath),
  settings: { maxConcurrentStreams: 128, initialWindowSize: 2 ** 24 - 1 },
})
server.on('session', (session) => session.setLocalWindowSize(2 ** 24 - 1))
server.on('stream', (stream, headers) => {
  const name = String(headers[':path'] ?? '/').split('?')[0]!
  stream.on('error', () => {})
  stream.resume()
  stream.on('end', () => {
    let body: Buffer
    try {
      body = file(name)
    } catch {
      stream.respond({ ':status': 404 }, { endStream: true })
      return
    }
    stream.respond({ ':status': 200, 'content-length': body.length })
    stream.end(body)
  })
})
server.listen(Number(port), '127.0.0.1')
process.on('SIGTERM', () => process.exit(0))

/**
 * Routes beyond h2-server.ts's built-in ones, for tests that compare or
 * record whole exchanges (test/differential.test.ts, the wire fuzzer's
 * recorder): statuses without content, repeated fields, informational
 * responses, a content-length that lies, a reset after the body, and a
 * server that changes its SETTINGS, PINGs, or closes its session.
 */
import http2 from 'node:http2'
import type { Handler } from './h2-server.js'
import { pattern } from './h2-server.js'

export const moreRoutes: Handler = (req, res) => {
  const url = new URL(`https://x${req.url}`)
  const query = (name: string, fallback: number) => Number(url.searchParams.get(name) ?? fallback)
  const stream = res.stream
  const session = stream.session!
  switch (url.pathname) {
    case '/status': {
      // 204 and 304 have no content; others get a short body.
      const status = query('code', 200)
      res.writeHead(status, { 'x-status': String(status) })
      if (status === 204 || status === 304) res.end()
      else res.end(`status ${status}`)
      return true
    }
    case '/cookies':
      stream.respond({
        ':status': 200,
        'set-cookie': ['a=1; Path=/', 'b=2; HttpOnly', 'c=3'],
        'x-repeated': ['one', 'two', 'three'],
        'content-type': 'text/plain; charset=utf-8',
        'x-list': ['a', 'b'],
        'content-language': 'en',
      })
      stream.end('cookies')
      return true
    case '/informational':
      // 103 Early Hints, then the final response: only the final one counts.
      stream.additionalHeaders({ ':status': 103, link: '</style.css>; rel=preload' })
      res.end('after hints')
      return true
    case '/length': {
      // A content-length that says `claim` while `send` octets follow (RFC 9113 §8.1.1: malformed when they differ).
      stream.respond({ ':status': 200, 'content-length': String(query('claim', 10)) })
      stream.end(pattern(query('send', 10)))
      return true
    }
    case '/end-then-reset':
      // `size` octets of body, then RST_STREAM with `code`. node:http2 ends the stream before it resets
      // (END_STREAM, then RST_STREAM): the response is complete and stands (RFC 9113 §8.1).
      stream.respond({ ':status': 200 })
      stream.write(pattern(query('size', 1000)), () => stream.close(query('code', http2.constants.NGHTTP2_INTERNAL_ERROR)))
      return true
    case '/settings':
      // New SETTINGS mid-session: fewer concurrent streams, another initial window, a small encoder table.
      session.settings({ maxConcurrentStreams: 50, initialWindowSize: 40_000, headerTableSize: 512 })
      res.end('settings sent')
      return true
    case '/ping':
      session.ping(() => {})
      res.end('pinged')
      return true
    case '/close-session':
      // Answered, then GOAWAY(NO_ERROR): the streams in flight finish, then the session closes.
      res.end('closing', () => session.close())
      return true
    default:
      return false
  }
}

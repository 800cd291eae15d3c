/**
 * Example: replace `fetch` in an existing app in three lines.
 *
 * The app below calls the global `fetch` and is not changed at all. Three
 * lines at startup make every one of its requests go through drainpipe:
 * HTTP/2, one multiplexed connection per origin, recycled after at most a
 * minute so traffic spreads again after a scale-out or a rolling restart.
 *
 *   import { Client } from 'drainpipe-http2'
 *   import { setGlobalDispatcher } from 'undici'
 *   setGlobalDispatcher(new Client({ maxConnectionAge: 60_000 }))
 *
 * Run: npx tsx examples/fetch-replacement.ts
 *
 * It starts its own HTTP/2 server on 127.0.0.1 (with the repository's test
 * certificates), so it needs no network and finishes by itself.
 */
import { Client } from '../lib/index.js' // in your app: from 'drainpipe-http2'
import { getGlobalDispatcher, setGlobalDispatcher } from 'undici'
import { startBackend } from '../test/helpers/h2-server.js'
import { pki } from '../test/helpers/pki.js'

// ── The three lines ─────────────────────────────────────────────────────────
// (the two imports are the first two, at the top of this file)
setGlobalDispatcher(
  new Client({
    maxConnectionAge: 60_000,
    // Only for this local demo server, whose certificate is signed by the
    // repository's test CA. Leave it out for origins with public certificates.
    connect: { ca: pki.ca },
  }),
)

// ── The existing app: plain global fetch, unchanged ───────────────────────
interface Greeting {
  greeting: string
  protocol: string
}

async function getGreeting(api: string, name: string): Promise<Greeting> {
  const res = await fetch(`${api}/greet?name=${encodeURIComponent(name)}`)
  if (!res.ok) throw new Error(`greet failed: ${res.status}`)
  return (await res.json()) as Greeting
}

async function placeOrder(api: string, order: { item: string; quantity: number }): Promise<unknown> {
  const res = await fetch(`${api}/echo`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(order),
  })
  return res.json()
}

// ── Run it against a local HTTP/2 server ────────────────────────────────────
async function main(): Promise<void> {
  const backend = await startBackend({
    host: '127.0.0.1',
    handler(req, res) {
      const url = new URL(req.url, 'https://x')
      if (url.pathname !== '/greet') return false
      res.setHeader('content-type', 'application/json')
      // The server reports the protocol the request arrived with.
      res.end(JSON.stringify({ greeting: `hello, ${url.searchParams.get('name')}`, protocol: `HTTP/${req.httpVersion}` }))
    },
  })
  const api = `https://127.0.0.1:${backend.port}`
  try {
    const greetings = await Promise.all(['ada', 'grace', 'edsger'].map((name) => getGreeting(api, name)))
    for (const greeting of greetings) console.log(`getGreeting: ${greeting.greeting} (server saw ${greeting.protocol})`)
    console.log('placeOrder:', JSON.stringify(await placeOrder(api, { item: 'drainpipe', quantity: 2 })))

    // Not part of the three lines: only here to show where the requests went.
    const client = getGlobalDispatcher() as Client
    const stats = client.stats()
    const origin = stats.origins[api]
    if (!origin) throw new Error(`drainpipe saw no request to ${api}`)
    const served = origin.pools.reduce((sum, pool) => sum + pool.served, 0)
    console.log(`through drainpipe: ${served} requests on ${origin.pools.length} ${origin.protocol} connection(s) to ${api}`)
    for (const pool of origin.pools) {
      console.log(`  pool #${pool.id} ${pool.address} state=${pool.state} served=${pool.served} maxConcurrentStreams=${pool.maxConcurrentStreams}`)
    }
    console.log(`  requests by address: ${JSON.stringify(origin.requestsByAddress)}`)
    console.log(`the server accepted ${backend.connections} connection(s) for ${backend.requests} requests`)
    await client.close()
  } finally {
    await backend.close()
  }
}

await main()

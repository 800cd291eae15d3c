import { describe, it, expect } from 'vitest'
import { Client } from '../lib/index.js'
import { startBackend, tableLookup } from './helpers/h2-server.js'
import { pki } from './helpers/pki.js'

describe('smoke', () => {
  it('GET and POST', async () => {
    const backend = await startBackend({ host: '127.0.0.2' })
    const dns = tableLookup({ 'api.test': ['127.0.0.2'] })
    const client = new Client({ connect: { ca: pki.ca }, lookup: dns.lookup })
    const res = await client.request(`https://api.test:${backend.port}/hello`)
    expect(res.statusCode).toBe(200)
    expect(await res.body.text()).toBe('hello')
    const post = await client.request(`https://api.test:${backend.port}/echo`, { method: 'POST', body: 'ping' })
    expect(await post.body.text()).toBe('ping')
    const f = await client.fetch(`https://api.test:${backend.port}/echo`, { method: 'POST', body: 'fetched' })
    expect(await f.text()).toBe('fetched')
    console.log(client.stats())
    await client.close()
    await backend.close()
  })
})

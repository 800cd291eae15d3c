import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer as createHttpServer } from 'node:http'
import { createServer as createHttpsServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { Client } from '../lib/index.js'
import { tableLookup } from './helpers/h2-server.js'
import { ManualClock } from './helpers/manual-clock.js'
import { pki } from './helpers/pki.js'
import { accepts, freePort, ready, requires, start, stop } from './helpers/processes.js'

const cleanup: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

async function listen(server: Server | ReturnType<typeof createHttpServer>, host: string): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, host, resolve))
  cleanup.push(() => new Promise((resolve) => server.close(resolve)))
  return (server.address() as AddressInfo).port
}

describe('HTTP/1.1 fallback', () => {
  it('an https:// server that negotiates http/1.1 is served by undici, for request(), stream() and fetch()', async () => {
    const sockets = new Set<unknown>()
    const server = createHttpsServer({ ...pki.apiTest, ALPNProtocols: ['http/1.1'] }, (req, res) => {
      sockets.add(req.socket)
      let body = ''
      req.on('data', (chunk: Buffer) => (body += chunk))
      req.on('end', () => res.end(`${req.method} ${req.url} ${req.httpVersion} ${body}`))
    })
    const port = await listen(server, '127.0.0.11')
    const client = new Client({ connect: { ca: pki.ca }, lookup: tableLookup({ 'api.test': ['127.0.0.11'] }).lookup })
    cleanup.push(() => client.close())
    const base = `https://api.test:${port}`
    const results = await Promise.all(
      Array.from({ length: 5 }, (_, i) => client.request(`${base}/r${i}`, { method: 'POST', body: `b${i}` }).then((r) => r.body.text())),
    )
    expect(results).toEqual(Array.from({ length: 5 }, (_, i) => `POST /r${i} 1.1 b${i}`))
    const streamed = await client.stream(`${base}/s`)
    let text = ''
    for await (const chunk of streamed.body) text += chunk
    expect(text).toBe('GET /s 1.1 ')
    expect(await (await client.fetch(`${base}/f`)).text()).toBe('GET /f 1.1 ')
    expect(client.stats().origins[base]!.protocol).toBe('http/1.1')
  })

  it('an http:// origin without h2c speaks HTTP/1.1, with connections aged out by maxConnectionAge', async () => {
    const connections = new Set<unknown>()
    const server = createHttpServer((req, res) => {
      connections.add(req.socket)
      res.end('plain')
    })
    const port = await listen(server, '127.0.0.11')
    const clock = new ManualClock()
    const client = new Client({ clock, maxConnectionAge: 1000, lookup: tableLookup({ 'api.test': ['127.0.0.11'] }).lookup })
    cleanup.push(() => client.close())
    const get = async () => expect(await (await client.request(`http://api.test:${port}/`)).body.text()).toBe('plain')
    await get()
    await get()
    expect(connections.size).toBe(1) // younger than its age: reused
    clock.advance(1000)
    await get()
    expect(connections.size).toBe(2) // aged out: a fresh connection
    clock.advance(999)
    await get()
    expect(connections.size).toBe(2)
    expect(client.stats().origins[`http://api.test:${port}`]!.protocol).toBe('http/1.1')
  })

  const nginx = '/usr/sbin/nginx'
  const nginxBinary = requires(nginx, 'nginx-light')
  it.skipIf(nginxBinary.skip)(`against nginx without http2${nginxBinary.note}`, async () => {
    nginxBinary.check()
    const dir = mkdtempSync(join(tmpdir(), 'drainpipe-nginx-'))
    cleanup.push(async () => rmSync(dir, { recursive: true, force: true }))
    writeFileSync(join(dir, 'cert.pem'), pki.apiTest.cert)
    writeFileSync(join(dir, 'key.pem'), pki.apiTest.key)
    const port = await freePort('127.0.0.12')
    writeFileSync(
      join(dir, 'nginx.conf'),
      `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir};
  server {
    listen 127.0.0.12:${port} ssl;
    ssl_certificate ${dir}/cert.pem;
    ssl_certificate_key ${dir}/key.pem;
    location / { return 200 "nginx $server_protocol $request_method"; }
  }
}
`,
    )
    execFileSync(nginx, ['-t', '-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: 'ignore' })
    const child = start(nginx, ['-p', dir, '-c', join(dir, 'nginx.conf')])
    cleanup.push(() => stop(child))
    if (!(await ready(child, () => accepts('127.0.0.12', port), 5000, 20))) throw new Error(`nginx did not start: ${child.output()}`)
    const client = new Client({ connect: { ca: pki.ca }, lookup: tableLookup({ 'api.test': ['127.0.0.12'] }).lookup })
    cleanup.push(() => client.close())
    const url = `https://api.test:${port}/`
    const body = await (await client.request(url, { method: 'POST', body: 'x' })).body.text()
    expect(body).toBe('nginx HTTP/1.1 POST')
    expect(client.stats().origins[`https://api.test:${port}`]!.protocol).toBe('http/1.1')
  })
})

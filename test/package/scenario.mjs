// What both runtime consumers (esm.mjs, cjs.cjs) do with the installed
// package: given the entry points as their module system loaded them, make
// real requests on loopback, meet a typed error, and answer from msw through
// drainpipe-http2/testing.
import assert from 'node:assert/strict'
import http2 from 'node:http2'

export async function exercise(label, { main, testing, grpc, msw }) {
  const { Client, DrainpipeError, InvalidArgumentError } = main
  const server = http2.createServer((req, res) => res.end(`hello ${req.url}`))
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const origin = `http://127.0.0.1:${server.address().port}`
  const client = new Client({ h2c: true })
  try {
    const response = await client.request(`${origin}/${label}`)
    assert.equal(response.statusCode, 200)
    assert.equal(await response.body.text(), `hello /${label}`)

    await assert.rejects(client.request('localhost:8443/x'), (error) => {
      assert.ok(error instanceof InvalidArgumentError && error instanceof DrainpipeError, `not a DrainpipeError: ${error}`)
      assert.equal(error.code, 'DRAINPIPE_INVALID_ARGUMENT')
      assert.match(error.message, /^Invalid URL 'localhost:8443\/x': the scheme is missing \(did you mean 'https:\/\/localhost:8443\/x'\?/)
      return true
    })

    // The subpaths share the main entry's classes: one copy of everything.
    const mocked = testing.createTestClient({
      handlers: [msw.http.get('https://api.test/user', () => msw.HttpResponse.json({ name: 'mocked' }))],
    })
    try {
      assert.ok(mocked instanceof Client, 'createTestClient() is not a Client of the main entry')
      assert.deepEqual(await (await mocked.request('https://api.test/user')).body.json(), { name: 'mocked' })
    } finally {
      await mocked.close()
    }
    assert.equal(typeof grpc.createGrpcTransport, 'function')
  } finally {
    await client.close()
    server.close()
  }
}

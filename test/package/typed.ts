// A strict TypeScript consumer of the installed package (check.sh compiles it
// as typed.mts, an ES module, and as typed.cts, CommonJS, both with
// module nodenext, then runs what tsc wrote). The @ts-expect-error lines are
// assertions on the published types: they fail the compile if the error goes away.
import http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import { basename } from 'node:path'
import { Client, DrainpipeError, type AsyncRequest, type ClientOptions, type ErrorCode } from 'drainpipe-http2'
import type { GrpcTransportOptions } from 'drainpipe-http2/grpc'
import type { MswOptions } from 'drainpipe-http2/testing'

const options: ClientOptions = { h2c: true, maxConnectionAge: 60_000, connect: { rejectUnauthorized: true } }
const unhandled: MswOptions['onUnhandledRequest'] = 'error'
const grpcBase: GrpcTransportOptions['baseUrl'] = 'https://api.test:8443'

// @ts-expect-error: the codes are a closed union, so a misspelt one does not compile.
const misspelt: ErrorCode = 'DRAINPIPE_CONECT'
// @ts-expect-error: AsyncRequest.handler is @internal, left out of the published types.
type Internal = AsyncRequest['handler']

async function main(): Promise<void> {
  const server = http2.createServer((_req, res) => res.end('typed'))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const client = new Client(options)
  try {
    const { statusCode, body } = await client.request(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`)
    const text: string = await body.text()
    if (statusCode !== 200 || text !== 'typed') throw new Error(`unexpected answer ${statusCode} ${text}`)
    const code = await client.request('localhost:8443/x').then(
      () => undefined,
      (error: unknown) => (error instanceof DrainpipeError ? error.code : undefined),
    )
    const expected: ErrorCode = 'DRAINPIPE_INVALID_ARGUMENT'
    if (code !== expected) throw new Error(`expected ${expected}, got ${code}`)
  } finally {
    await client.close()
    server.close()
  }
  console.log(`${basename(process.argv[1] ?? '')}: ok on Node ${process.version}`)
}

main().catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})

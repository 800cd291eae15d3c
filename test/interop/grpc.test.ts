/**
 * Interop: a grpc-js server (HTTP/2 over TLS) with `grpc.max_connection_age_ms`:
 * each connection gets GOAWAY(2^31-1) after ~300 ms, then GOAWAY with its
 * last stream, and `grpc.max_connection_age_grace_ms` for its streams to
 * finish. Requests are raw HTTP/2 through `client.request`, gRPC framed by
 * hand (5-byte prefix, `content-type: application/grpc`, `te: trailers`),
 * answers checked down to the `grpc-status` trailer:
 * - odd: Record, which counts each id it processes (exactly-once);
 * - i % 10 = 0: Big, a 256 KiB message, byte-exact;
 * - i % 10 = 4: Missing, answered NOT_FOUND trailers-only (grpc-status in the
 *   response's only HEADERS, with END_STREAM);
 * - the rest: Hello.
 */
import * as grpc from '@grpc/grpc-js'
import { afterEach, describe, expect, it } from 'vitest'
import { Client } from '../../lib/index.js'
import { pattern, tableLookup } from '../helpers/h2-server.js'
import { pki } from '../helpers/pki.js'
import { BIG, expectClean, line, run } from './helpers/mix.js'
import { INTEROP_ID, tapEngine } from './helpers/tap.js'

const cleanup: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

/** One gRPC message on the wire: uncompressed flag, length, bytes. */
function frame(message: Buffer): Buffer {
  const framed = Buffer.alloc(5 + message.length)
  framed.writeUInt32BE(message.length, 1)
  message.copy(framed, 5)
  return framed
}

/** Raw bytes in and out: the test frames and checks them itself. */
const raw = (path: string): grpc.MethodDefinition<Buffer, Buffer> => ({
  path,
  requestStream: false,
  responseStream: false,
  requestSerialize: (message) => message,
  requestDeserialize: (bytes) => bytes,
  responseSerialize: (message) => message,
  responseDeserialize: (bytes) => bytes,
})

async function startGrpcServer(host: string) {
  const processed = new Map<string, number>()
  const big = pattern(BIG)
  const server = new grpc.Server({ 'grpc.max_connection_age_ms': 300, 'grpc.max_connection_age_grace_ms': 5000 })
  const unary = (answer: (request: Buffer) => Buffer) => (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) =>
    callback(null, answer(call.request))
  server.addService(
    {
      Record: raw('/interop.Interop/Record'),
      Big: raw('/interop.Interop/Big'),
      Missing: raw('/interop.Interop/Missing'),
      Hello: raw('/interop.Interop/Hello'),
    },
    {
      Record: unary((request) => {
        const id = request.toString()
        processed.set(id, (processed.get(id) ?? 0) + 1)
        return request
      }),
      Big: unary(() => big),
      Missing: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => callback({ code: grpc.status.NOT_FOUND, details: 'missing' }),
      Hello: unary(() => Buffer.from('hello')),
    },
  )
  const credentials = grpc.ServerCredentials.createSsl(null, [{ private_key: pki.apiTest.key, cert_chain: pki.apiTest.cert }])
  const port = await new Promise<number>((resolve, reject) => server.bindAsync(`${host}:0`, credentials, (error, bound) => (error ? reject(error) : resolve(bound))))
  return { host, port, processed, close: () => server.forceShutdown() }
}

describe('interop: grpc-js server with max_connection_age', () => {
  it('1,000 mixed unary calls: 0 failed, grpc-status checked, every Record processed exactly once', async () => {
    const tap = tapEngine()
    const server = await startGrpcServer('127.0.0.110')
    cleanup.push(async () => server.close())
    const client = new Client({ connect: { ca: pki.ca }, lookup: tableLookup({ 'api.test': [server.host] }).lookup, ...tap.clientOptions })
    cleanup.push(() => client.destroy())
    const base = `https://api.test:${server.port}/interop.Interop`

    const call = async (index: number, method: string, message: Buffer) => {
      const res = await client.request(`${base}/${method}`, {
        method: 'POST',
        headers: { 'content-type': 'application/grpc', te: 'trailers', [INTEROP_ID]: `r${index}` },
        body: frame(message),
      })
      const body = Buffer.from(await res.body.arrayBuffer())
      if (res.statusCode !== 200) throw new Error(`${method}: HTTP ${res.statusCode}`)
      return { res, body }
    }
    const expectOk = (method: string, got: { res: { trailers: Record<string, unknown> }; body: Buffer }, message: Buffer) => {
      if (got.res.trailers['grpc-status'] !== '0' || !got.body.equals(frame(message))) {
        throw new Error(`${method}: grpc-status ${String(got.res.trailers['grpc-status'])}, ${got.body.length} bytes`)
      }
    }
    const posted = new Set<string>()
    const big = pattern(BIG)
    const send = async (index: number) => {
      if (index % 2 === 1) {
        const id = Buffer.from(`p${index}`)
        expectOk('Record', await call(index, 'Record', id), id)
        posted.add(`p${index}`)
      } else if (index % 10 === 0) {
        expectOk('Big', await call(index, 'Big', Buffer.alloc(0)), big)
      } else if (index % 10 === 4) {
        const { res, body } = await call(index, 'Missing', Buffer.alloc(0))
        if (res.headers['grpc-status'] !== '5' || body.length !== 0) throw new Error(`Missing: grpc-status ${String(res.headers['grpc-status'])}, ${body.length} bytes`)
      } else {
        expectOk('Hello', await call(index, 'Hello', Buffer.alloc(0)), Buffer.from('hello'))
      }
    }

    const outcome = await run({ mix: { send, posted }, tap, processed: server.processed })
    console.log(line('grpc-js max_connection_age 300 ms', client, outcome))
    expectClean(outcome)
    // Each connection that lived 300 ms ended with GOAWAY(2^31-1) and GOAWAY(last stream).
    const lastStreamIds = tap.connections.flatMap((connection) => connection.goaways.map((goaway) => goaway.lastStreamId))
    expect(lastStreamIds.filter((id) => id === 2 ** 31 - 1).length).toBeGreaterThanOrEqual(2)
    await client.close()
  })
})

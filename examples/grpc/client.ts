/**
 * A Connect gRPC client over drainpipe, against a grpc-js server that closes
 * every connection after 500 ms (`grpc.max_connection_age_ms`), as servers
 * behind Kubernetes Services often do to rebalance. drainpipe drains each old
 * connection, opens a new one and replays the few calls the server refused
 * in between: no call fails.
 *
 * Run from the repository root:
 *   npx tsx examples/grpc/client.ts
 *
 * In an application, import from the package instead:
 *   import { Client } from 'drainpipe-http2'
 *   import { createGrpcTransport, grpcKeepAlive } from 'drainpipe-http2/grpc'
 *
 * (Without a client of your own, `createGrpcTransport({ baseUrl, clientOptions })`
 * makes one with these settings and closes it with the transport.)
 */
import { create, fromBinary, toBinary, type DescMessage, type MessageShape } from '@bufbuild/protobuf'
import { createClient } from '@connectrpc/connect'
import * as grpc from '@grpc/grpc-js'
import { Client } from '../../lib/index.js'
import { createGrpcTransport, grpcKeepAlive } from '../../lib/grpc.js'
import { GreetResponseSchema, GreetService, type GreetRequest, type GreetResponse } from './gen/greet_pb.js'

// ── A grpc-js server on loopback (h2c), serialising with protobuf-es ─────

async function startServer(): Promise<{ baseUrl: string; stop: () => void }> {
  const server = new grpc.Server({ 'grpc.max_connection_age_ms': 500 })
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {}
  for (const method of GreetService.methods) {
    const input: DescMessage = method.input
    const output: DescMessage = method.output
    definition[method.localName] = {
      path: `/${GreetService.typeName}/${method.name}`,
      requestStream: false,
      responseStream: method.methodKind === 'server_streaming',
      requestSerialize: (message) => Buffer.from(toBinary(input, message as MessageShape<DescMessage>)),
      requestDeserialize: (bytes) => fromBinary(input, bytes),
      responseSerialize: (message) => Buffer.from(toBinary(output, message as MessageShape<DescMessage>)),
      responseDeserialize: (bytes) => fromBinary(output, bytes),
    }
  }
  server.addService(definition, {
    greet(call: grpc.ServerUnaryCall<GreetRequest, GreetResponse>, callback: grpc.sendUnaryData<GreetResponse>) {
      callback(null, create(GreetResponseSchema, { greeting: `Hello, ${call.request.name}!`, peer: call.getPeer() }))
    },
    greetStream(call: grpc.ServerWritableStream<GreetRequest, GreetResponse>) {
      for (let i = 1; i <= call.request.count; i++) {
        call.write(create(GreetResponseSchema, { greeting: `Hello #${i}, ${call.request.name}!`, peer: call.getPeer() }))
      }
      call.end()
    },
  })
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  )
  return { baseUrl: `http://127.0.0.1:${port}`, stop: () => server.forceShutdown() }
}

// ── The client: Connect over drainpipe ─────────────────────────────────

const server = await startServer()
// h2c for the plain http:// server; with TLS, pass `connect: { ca }` instead.
// grpcKeepAlive: PINGs no gRPC server punishes (grpc-go allows one per 5 minutes).
const client = new Client({ h2c: true, keepAlive: grpcKeepAlive })
const transport = createGrpcTransport({ baseUrl: server.baseUrl, client })
const greeter = createClient(GreetService, transport)

try {
  const unary = await greeter.greet({ name: 'drainpipe' })
  console.log(`unary: ${unary.greeting}`)

  const streamed: string[] = []
  for await (const response of greeter.greetStream({ name: 'stream', count: 3 })) streamed.push(response.greeting)
  console.log(`server streaming: ${streamed.join(' | ')}`)

  // Calls for about two seconds, 20 at a time, while the server ages out a connection every 500 ms.
  const peers = new Set<string>()
  let ok = 0
  let failed = 0
  const until = Date.now() + 2_000
  await Promise.all(
    Array.from({ length: 20 }, async (_, worker) => {
      for (let i = 0; Date.now() < until; i++) {
        try {
          const response = await greeter.greet({ name: `worker ${worker} call ${i}` })
          peers.add(response.peer)
          ok++
        } catch (error) {
          failed++
          console.error(`call failed: ${String(error)}`)
        }
      }
    }),
  )
  console.log(`calls: ${ok} ok, ${failed} failed`)
  console.log(`connections used: ${peers.size}`)
  const { recycles, goaways } = client.stats()
  console.log(`server GOAWAYs seen: ${goaways}, planned recycles: ${recycles.ok}`)
  process.exitCode = failed === 0 ? 0 : 1
} finally {
  await client.close()
  server.stop()
}

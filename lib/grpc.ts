/**
 * `drainpipe-http2/grpc`: a gRPC transport for Connect (`@connectrpc/connect` 2.x)
 * that speaks the gRPC protocol directly on drainpipe, so gRPC clients get
 * connection ages, graceful draining and transparent retries of calls the
 * server provably never processed.
 *
 * ```ts
 * import { createClient } from '@connectrpc/connect'
 * import { Client } from 'drainpipe-http2'
 * import { createGrpcTransport, grpcKeepAlive } from 'drainpipe-http2/grpc'
 *
 * const client = new Client({ maxConnectionAge: 60_000, keepAlive: grpcKeepAlive })
 * const transport = createGrpcTransport({ baseUrl: 'https://api.internal:8443', client })
 * const greeter = createClient(GreeterService, transport)
 * ```
 *
 * Deadlines are gRPC's (`timeoutMs`, sent as `grpc-timeout` and enforced by
 * the client): the client's `headersTimeout` and `bodyTimeout` do not apply
 * to gRPC calls, so quiet streams live as long as the call.
 *
 * @module drainpipe-http2/grpc
 */
export { createGrpcTransport, grpcKeepAlive, type GrpcTransport, type GrpcTransportOptions } from './grpc/transport.js'
export { compressionGzip } from './grpc/compression.js'
export { createUniversalClient } from './grpc/universal-client.js'
export { toConnectError } from './grpc/status.js'

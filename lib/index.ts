/**
 * `drainpipe-http2`: the client, its options, errors, stats and channel
 * messages. gRPC and msw support are the subpaths `drainpipe-http2/grpc`
 * and `drainpipe-http2/testing`.
 *
 * @module drainpipe-http2
 */
export { Client, type ResponseData } from './client.js'
export type { RequestOptions } from './request.js'
export type { FetchInput, FetchInit } from './fetch.js'
export { fetch } from './default-fetch.js'
export type {
  ClientOptions,
  PoolOptions,
  KeepAliveOptions,
  BackoffOptions,
  OutlierDetectionOptions,
  SlowStartOptions,
  ConnectOptions,
  LookupFunction,
  EngineName,
} from './options.js'
export type { Clock, TimerHandle } from './clock.js'
export { AsyncRequest, type AsyncRequestEvents, type AsyncResponse } from './async-request.js'
export type { StreamResponse } from './stream-response.js'
export type { ClientStats, OriginStats, PoolStats, PoolStateName, AddressStats, AddressState } from './stats.js'
export type { CloseReason, DrainReason } from './pool.js'
export type { RecycleReason } from './shard.js'
export type {
  ChannelMessages,
  ChannelName,
  PoolInfo,
  ConnectMessage,
  ConnectFailedMessage,
  RecycleMessage,
  DrainMessage,
  CloseMessage,
  GoawayMessage,
  PingTimeoutMessage,
  PingBackoffMessage,
  RetryMessage,
  AddressEjectedMessage,
  AddressReturnedMessage,
} from './channels.js'
export type { BodyInput } from './body.js'
export type { HeadersInput } from './headers.js'
export { resolverLookup, type ResolverLookupOptions, type Lookup, type LookupCallback } from './resolver.js'
export type { ResponseHeaders } from './handler.js'
export {
  DrainpipeError,
  InvalidOptionError,
  InvalidArgumentError,
  InvalidHeaderError,
  ConnectError,
  ConnectTimeoutError,
  ProtocolNegotiationError,
  ProtocolError,
  PeerLimitError,
  RefusedStreamError,
  ReadOnlyError,
  DrainTimeoutError,
  ConnectionLostError,
  QueueFullError,
  HeadersTimeoutError,
  BodyTimeoutError,
  RequestAbortedError,
  RequestBodyError,
  ClientClosedError,
  isUnprocessed,
  type ErrorCode,
} from './errors.js'

export { Client, type FetchInput } from './client.js'
export { fetch } from './fetch.js'
export type { ClientOptions, PoolOptions, KeepAliveOptions, BackoffOptions, ConnectOptions, LookupFunction } from './options.js'
export type { Clock, TimerHandle } from './clock.js'
export { AsyncRequest, type AsyncRequestEvents } from './async-request.js'
export type { StreamResponse } from './stream-response.js'
export type { ClientStats, OriginStats, PoolStats } from './stats.js'
export type { ChannelMessages, ChannelName, PoolInfo } from './channels.js'
export type { PoolStateName } from './pool.js'
export type { BodyInput } from './body.js'
export type { HeadersInput } from './headers.js'
export { resolverLookup } from './resolver.js'
export {
  DrainpipeError,
  InvalidOptionError,
  InvalidArgumentError,
  InvalidHeaderError,
  ConnectError,
  ConnectTimeoutError,
  ProtocolNegotiationError,
  ProtocolError,
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
} from './errors.js'

import { Client } from './client.js'
import type { FetchInit, FetchInput } from './fetch.js'

let shared: Client | undefined

/**
 * WHATWG `fetch` through a process-wide drainpipe `Client` with default
 * options, created on first use: `import { fetch } from 'drainpipe-http2'`.
 * For options (age, shards, TLS), make a `Client` and use `client.fetch()`.
 */
export function fetch(input: FetchInput, init?: FetchInit): ReturnType<Client['fetch']> {
  shared ??= new Client()
  return shared.fetch(input, init)
}

import type { LookupAddress } from 'node:dns'
import pRetry from 'p-retry'
import { ConnectError } from './errors.js'
import type { LookupFunction } from './options.js'

/** A lookup's answer in every shape resolvers give it (one address, or all): the list, families kept. */
export function lookupAnswer(answer: LookupAddress[] | string | undefined, family: number | undefined): LookupAddress[] {
  if (typeof answer === 'string') return answer === '' ? [] : [{ address: answer, family: family ?? (answer.includes(':') ? 6 : 4) }]
  return Array.isArray(answer) ? answer : []
}

/**
 * getaddrinfo's "temporary failure": glibc's resolver gave up on a query
 * (most often one dropped UDP packet, as in the conntrack race behind
 * Kubernetes' DNS delays). Asking again soon usually succeeds. SERVFAIL and
 * timeouts are not asked again here: the resolver already retried those.
 */
const TRY_AGAIN = 'EAI_AGAIN'

/**
 * One fresh lookup of `host`: every address, deduplicated, in the
 * resolver's order. A temporary failure is asked again twice, 25 then
 * 100 ms later, within the connect deadline (`signal`): p-retry's retry with
 * backoff, in real time, as the resolver's own failures are.
 */
export function lookupAll(lookup: LookupFunction, host: string, signal: AbortSignal): Promise<string[]> {
  return pRetry(() => lookupOnce(lookup, host), {
    retries: 2,
    minTimeout: 25,
    factor: 4,
    signal,
    shouldRetry: ({ error }) => ((error as ConnectError).cause as NodeJS.ErrnoException | undefined)?.code === TRY_AGAIN,
  })
}

function lookupOnce(lookup: LookupFunction, host: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    try {
      lookup(host, { all: true }, (error, answer, family) => {
        if (error) {
          reject(new ConnectError(`DNS lookup of '${host}' failed: ${error.code ?? error.message}`, { cause: error }))
          return
        }
        const addresses = lookupAnswer(answer, family).map((entry) => entry.address)
        if (addresses.length === 0) reject(new ConnectError(`DNS lookup of '${host}' returned no addresses`))
        else resolve([...new Set(addresses)])
      })
    } catch (error) {
      reject(new ConnectError(`DNS lookup of '${host}' threw: ${(error as Error).message}`, { cause: error }))
    }
  })
}

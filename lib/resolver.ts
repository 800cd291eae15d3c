import type { LookupAddress, LookupOptions } from 'node:dns'
import { Resolver } from 'node:dns/promises'
import { isIP } from 'node:net'
import { InvalidOptionError, shown } from './errors.js'

/** Options of {@link resolverLookup}. */
export interface ResolverLookupOptions {
  /** DNS servers as `Resolver#setServers()` takes them: `'127.0.0.1'`, `'127.0.0.1:5353'`, `'[::1]:5353'`. */
  servers: string[]
  /** 4 (A), 6 (AAAA), or 0 (both, IPv4 first). A lookup call asking for 4 or 6 overrides it. Default 0. */
  family?: 0 | 4 | 6
  /** Initial timeout of one query attempt in ms; c-ares backs off and has a floor of about 250 ms. Default 2000. */
  timeout?: number
  /** Attempts per server before `ETIMEOUT`. Default 2. */
  tries?: number
}

/** The callback of a `dns.lookup`-shaped function: one address, or all of them with `{ all: true }`. */
export type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void
/** A function with `dns.lookup`'s signature, usable as drainpipe's `lookup` and as `net.connect`'s. */
export type Lookup = (hostname: string, options: LookupOptions | number | LookupCallback, callback?: LookupCallback) => void

const NOT_FOUND = new Set(['ENOTFOUND', 'ENODATA'])

/**
 * A `lookup` with `dns.lookup`'s callback signature that queries the given DNS servers directly
 * (A/AAAA records, every call a fresh query, no cache). IP literals are returned without a query.
 * Errors carry `code` (`ENOTFOUND` for an unknown name or an empty answer, `ESERVFAIL`,
 * `ETIMEOUT`, …) and `hostname`, as `dns.lookup`'s do.
 *
 * @throws InvalidOptionError naming the option when `options` are invalid.
 */
export function resolverLookup(options: ResolverLookupOptions): Lookup {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('resolverLookup: options must be an object')
  const { servers, family = 0, timeout = 2000, tries = 2 } = options
  const positiveInt = (name: string, value: unknown) => {
    if (!Number.isSafeInteger(value) || (value as number) < 1) {
      throw new InvalidOptionError(`resolverLookup: options.${name} must be a positive integer, got ${shown(value)}`)
    }
  }
  positiveInt('timeout', timeout)
  positiveInt('tries', tries)
  if (family !== 0 && family !== 4 && family !== 6) {
    throw new InvalidOptionError(`resolverLookup: options.family must be 0, 4 or 6, got ${shown(family)}`)
  }
  if (!Array.isArray(servers) || servers.length === 0 || !servers.every((s) => typeof s === 'string')) {
    throw new InvalidOptionError('resolverLookup: options.servers must be a non-empty array of strings')
  }
  const resolver = new Resolver({ timeout, tries })
  try {
    resolver.setServers(servers)
  } catch (err) {
    throw new InvalidOptionError(`resolverLookup: options.servers: ${(err as Error).message}`)
  }

  const query = async (hostname: string, fam: 4 | 6): Promise<LookupAddress[]> => {
    const ips = fam === 4 ? await resolver.resolve4(hostname) : await resolver.resolve6(hostname)
    return ips.map((address) => ({ address, family: fam }))
  }

  const resolve = async (hostname: string, fam: 0 | 4 | 6): Promise<LookupAddress[]> => {
    if (hostname === '') throw lookupError(hostname, undefined)
    const results = await Promise.allSettled(fam === 0 ? [query(hostname, 4), query(hostname, 6)] : [query(hostname, fam)])
    const addresses = results.flatMap((r) => (r.status === 'fulfilled' ? r.value : []))
    if (addresses.length > 0) return addresses
    const failures = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as NodeJS.ErrnoException] : []))
    throw lookupError(hostname, failures.find((e) => !NOT_FOUND.has(e.code ?? '')) ?? failures[0])
  }

  return (hostname, lookupOptions, callback) => {
    const cb = typeof lookupOptions === 'function' ? lookupOptions : callback
    if (typeof cb !== 'function') throw new TypeError('lookup: callback must be a function')
    if (typeof hostname !== 'string') throw new TypeError('lookup: hostname must be a string')
    const opts = typeof lookupOptions === 'object' && lookupOptions !== null ? lookupOptions : {}
    const asked = typeof lookupOptions === 'number' ? lookupOptions : opts.family
    const fam = asked === 4 || asked === 'IPv4' ? 4 : asked === 6 || asked === 'IPv6' ? 6 : family
    const literal = isIP(hostname)
    const result = literal !== 0 ? Promise.resolve([{ address: hostname, family: literal }]) : resolve(hostname, fam)
    result.then(
      (addresses) => process.nextTick(() => (opts.all ? cb(null, addresses) : cb(null, addresses[0]!.address, addresses[0]!.family))),
      (err: NodeJS.ErrnoException) => process.nextTick(() => cb(err, opts.all ? [] : '')),
    )
  }
}

/** A Node-style lookup error: `ENODATA` (empty answer) and missing codes become `ENOTFOUND`. */
function lookupError(hostname: string, cause: NodeJS.ErrnoException | undefined): NodeJS.ErrnoException {
  const code = cause?.code === undefined || NOT_FOUND.has(cause.code) ? 'ENOTFOUND' : cause.code
  return Object.assign(new Error(`lookup ${code} ${hostname}`, { cause }), { code, hostname, syscall: 'lookup' })
}

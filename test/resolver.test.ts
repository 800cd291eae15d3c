import type { LookupAddress } from 'node:dns'
import { once } from 'node:events'
import { connect, createServer, type AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { InvalidOptionError } from '../lib/errors.js'
import { resolverLookup, type Lookup, type ResolverLookupOptions } from '../lib/resolver.js'
import { startDnsServer, type DnsServer } from './helpers/dns-server.js'
import { DNSMASQ_BINARY, startDnsmasq, type Dnsmasq } from './helpers/dnsmasq.js'
import { requires } from './helpers/processes.js'

type Options = Parameters<Lookup>[1]

/** `lookup(hostname, { ...options, all: true })` as a promise. */
function lookupAll(lookup: Lookup, hostname: string, options: object = {}): Promise<LookupAddress[]> {
  return new Promise((resolve, reject) => {
    lookup(hostname, { ...options, all: true }, (err, addresses) => (err ? reject(err) : resolve(addresses as LookupAddress[])))
  })
}

/** `lookup(hostname, options)` (single address) as a promise. */
function lookupOne(lookup: Lookup, hostname: string, options: Options = {}): Promise<LookupAddress> {
  return new Promise((resolve, reject) => {
    lookup(hostname, options, (err, address, family) => (err ? reject(err) : resolve({ address: address as string, family: family! })))
  })
}

const v4 = (...addresses: string[]) => addresses.map((address) => ({ address, family: 4 }))

describe('resolverLookup against the in-repo DNS server', () => {
  let dns: DnsServer
  let lookup: Lookup
  const make = (options: Partial<ResolverLookupOptions> = {}) => resolverLookup({ servers: [dns.server], ...options })

  beforeAll(async () => {
    dns = await startDnsServer()
    lookup = make()
  })
  afterAll(() => dns?.close())

  it('returns every A record with all: true, in order', async () => {
    dns.setRecords('multi.test', ['127.0.0.2', '127.0.0.3', '127.0.0.4'])
    expect(await lookupAll(lookup, 'multi.test')).toEqual(v4('127.0.0.2', '127.0.0.3', '127.0.0.4'))
  })

  it('returns the first address and its family without all', async () => {
    dns.setRecords('single.test', ['127.0.0.5', '127.0.0.6'])
    expect(await lookupOne(lookup, 'single.test')).toEqual({ address: '127.0.0.5', family: 4 })
    expect(await lookupOne(lookup, 'single.test', { all: false })).toEqual({ address: '127.0.0.5', family: 4 })
  })

  it('accepts the (hostname, callback) and (hostname, family, callback) forms', async () => {
    dns.setRecords('forms.test', ['127.0.0.7'])
    const twoArgs = await new Promise<unknown[]>((resolve) => lookup('forms.test', (...args) => resolve(args)))
    expect(twoArgs).toEqual([null, '127.0.0.7', 4])
    expect(await lookupOne(lookup, 'forms.test', 4)).toEqual({ address: '127.0.0.7', family: 4 })
  })

  it('queries A and AAAA with family 0, only the asked type with 4 or 6', async () => {
    dns.setRecords('family.test', ['127.0.0.8'])
    expect(await lookupAll(lookup, 'family.test')).toEqual(v4('127.0.0.8'))
    expect([dns.queries('family.test', 'A'), dns.queries('family.test', 'AAAA')]).toEqual([1, 1])

    expect(await lookupAll(make({ family: 4 }), 'family.test')).toEqual(v4('127.0.0.8'))
    expect([dns.queries('family.test', 'A'), dns.queries('family.test', 'AAAA')]).toEqual([2, 1])

    // The name has no AAAA record: an empty answer is ENOTFOUND.
    await expect(lookupAll(make({ family: 6 }), 'family.test')).rejects.toMatchObject({ code: 'ENOTFOUND' })
    // A family asked by the call (as net.connect does) overrides the configured one.
    await expect(lookupAll(lookup, 'family.test', { family: 6 })).rejects.toMatchObject({ code: 'ENOTFOUND' })
    expect(await lookupAll(make({ family: 6 }), 'family.test', { family: 4 })).toEqual(v4('127.0.0.8'))
    expect([dns.queries('family.test', 'A'), dns.queries('family.test', 'AAAA')]).toEqual([3, 3])
  })

  it('fails with ENOTFOUND and the hostname for an unknown name (NXDOMAIN)', async () => {
    const err = await lookupOne(lookup, 'unknown.test').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(Error)
    expect(err).toMatchObject({ code: 'ENOTFOUND', hostname: 'unknown.test' })
    await expect(lookupAll(lookup, 'unknown.test')).rejects.toMatchObject({ code: 'ENOTFOUND', hostname: 'unknown.test' })
  })

  it('fails with ENOTFOUND for a known name without addresses (empty answer)', async () => {
    dns.setRecords('empty.test', [])
    await expect(lookupAll(lookup, 'empty.test')).rejects.toMatchObject({ code: 'ENOTFOUND', hostname: 'empty.test' })
  })

  it('fails with ESERVFAIL when the server answers SERVFAIL', async () => {
    dns.setRecords('broken.test', ['127.0.0.9'])
    dns.setFailure('broken.test', 'servfail')
    await expect(lookupAll(lookup, 'broken.test')).rejects.toMatchObject({ code: 'ESERVFAIL', hostname: 'broken.test' })
    dns.setFailure('broken.test', null)
    expect(await lookupAll(lookup, 'broken.test')).toEqual(v4('127.0.0.9'))
  })

  it('fails with ETIMEOUT when the server does not answer', async () => {
    dns.setRecords('silent.test', ['127.0.0.10'])
    dns.setFailure('silent.test', 'timeout')
    const quick = make({ timeout: 100, tries: 1 })
    await expect(lookupAll(quick, 'silent.test')).rejects.toMatchObject({ code: 'ETIMEOUT', hostname: 'silent.test' })
    expect(dns.queries('silent.test', 'A')).toBeGreaterThanOrEqual(1)
  })

  it('sees changed records on the next call (a fresh query each time, no cache)', async () => {
    dns.setRecords('moving.test', ['127.0.0.11'])
    expect(await lookupAll(lookup, 'moving.test', { family: 4 })).toEqual(v4('127.0.0.11'))
    dns.setRecords('moving.test', ['127.0.0.12', '127.0.0.13'])
    expect(await lookupAll(lookup, 'moving.test', { family: 4 })).toEqual(v4('127.0.0.12', '127.0.0.13'))
    expect(await lookupAll(lookup, 'moving.test', { family: 4 })).toEqual(v4('127.0.0.12', '127.0.0.13'))
    expect(dns.queries('moving.test', 'A')).toBe(3)
  })

  it('returns IP literals as they are, without a query', async () => {
    expect(await lookupAll(lookup, '127.0.0.14')).toEqual(v4('127.0.0.14'))
    expect(await lookupOne(lookup, '::1')).toEqual({ address: '::1', family: 6 })
    expect(dns.queries('127.0.0.14') + dns.queries('::1')).toBe(0)
  })

  it('works as the lookup of net.connect', async () => {
    const server = createServer((socket) => socket.end())
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    try {
      dns.setRecords('connect.test', ['127.0.0.1'])
      const { port } = server.address() as AddressInfo
      const socket = connect({ host: 'connect.test', port, lookup })
      await once(socket, 'connect')
      expect(socket.remoteAddress).toBe('127.0.0.1')
      socket.destroy()
    } finally {
      server.close()
    }
  })

  it('rejects bad options with an InvalidOptionError naming the option', () => {
    const bad: [unknown, RegExp][] = [
      [undefined, /options/],
      [{}, /servers/],
      [{ servers: [] }, /servers/],
      [{ servers: 'x' }, /servers/],
      [{ servers: ['not an address'] }, /servers/],
      [{ servers: [dns.server], family: 5 }, /family/],
      [{ servers: [dns.server], timeout: 0 }, /timeout/],
      [{ servers: [dns.server], timeout: 1.5 }, /timeout/],
      [{ servers: [dns.server], tries: 0 }, /tries/],
      [{ servers: [dns.server], tries: '2' }, /tries/],
    ]
    for (const [options, name] of bad) {
      expect(() => resolverLookup(options as ResolverLookupOptions)).toThrow(InvalidOptionError)
      expect(() => resolverLookup(options as ResolverLookupOptions)).toThrow(name)
    }
  })
})

// dnsmasq tests skip where dnsmasq-base is missing, except in CI, where they must run (and fail).
const dnsmasqBinary = requires(DNSMASQ_BINARY, 'dnsmasq-base')

describe.skipIf(dnsmasqBinary.skip)(`resolverLookup against dnsmasq${dnsmasqBinary.note}`, () => {
  // Started by the first test rather than in beforeAll, so that in CI a missing dnsmasq fails every test
  // (vitest reports the tests of a failed beforeAll as skipped).
  let started: Promise<{ dnsmasq: Dnsmasq; lookup: Lookup }> | undefined
  const setup = () =>
    (started ??= (async () => {
      dnsmasqBinary.check()
      const dnsmasq = await startDnsmasq({ records: { 'api.test': ['127.0.0.2', '127.0.0.3'], 'one.test': ['127.0.0.4'] } })
      return { dnsmasq, lookup: resolverLookup({ servers: [dnsmasq.server] }) }
    })())
  afterAll(async () => {
    const running = await started?.catch(() => undefined)
    await running?.dnsmasq.close()
  })

  it('returns the A records, all or the first', async () => {
    const { lookup } = await setup()
    expect(sorted(await lookupAll(lookup, 'api.test'))).toEqual(v4('127.0.0.2', '127.0.0.3'))
    expect(await lookupOne(lookup, 'one.test')).toEqual({ address: '127.0.0.4', family: 4 })
  })

  it('fails with ENOTFOUND for an unknown name and for a missing AAAA', async () => {
    const { lookup } = await setup()
    await expect(lookupAll(lookup, 'unknown.test')).rejects.toMatchObject({ code: 'ENOTFOUND', hostname: 'unknown.test' })
    await expect(lookupAll(lookup, 'one.test', { family: 6 })).rejects.toMatchObject({ code: 'ENOTFOUND', hostname: 'one.test' })
  })

  it('sees changed records on the next call', async () => {
    const { dnsmasq, lookup } = await setup()
    await dnsmasq.setRecords('moving.test', ['127.0.0.5'])
    expect(await lookupAll(lookup, 'moving.test')).toEqual(v4('127.0.0.5'))
    await dnsmasq.setRecords('moving.test', ['127.0.0.6', '127.0.0.7'])
    expect(sorted(await lookupAll(lookup, 'moving.test'))).toEqual(v4('127.0.0.6', '127.0.0.7'))
    await dnsmasq.setRecords('moving.test', [])
    await expect(lookupAll(lookup, 'moving.test')).rejects.toMatchObject({ code: 'ENOTFOUND' })
  })

  it('returns IP literals as they are', async () => {
    const { lookup } = await setup()
    expect(await lookupAll(lookup, '127.0.0.8')).toEqual(v4('127.0.0.8'))
  })
})

/** The order of a name's addresses is up to dnsmasq; compare them sorted. */
const sorted = (addresses: LookupAddress[]) => [...addresses].sort((a, b) => a.address.localeCompare(b.address))

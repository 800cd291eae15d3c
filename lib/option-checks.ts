/**
 * How option values are checked: each option has a kind (a duration, a
 * count, a nested object of known keys, …), and an unknown key gets a "did
 * you mean". Every failure is an `InvalidOptionError` naming the option.
 */
import { InvalidOptionError } from './errors.js'
import type {
  BackoffOptions,
  ConnectOptions,
  EngineName,
  KeepAliveOptions,
  OutlierDetectionOptions,
  SlowStartOptions,
} from './options.js'

/** The HTTP/2 engines a client can use. */
export const engineNames: readonly EngineName[] = ['wire', 'node']

export type Kind =
  | 'duration'
  | 'count'
  | 'positive'
  | 'percent'
  | 'fraction'
  | 'boolean'
  | 'function'
  | 'object'
  | 'keepAlive'
  | 'backoff'
  | 'outliers'
  | 'slowStart'
  | 'tls'
  | 'engine'

/**
 * Every name `ConnectOptions` has (tsc fails when this list and the type
 * differ): tls.connect ignores names it does not know, so a misspelt
 * `servrname` would silently verify nothing it was meant to. Values are
 * left to tls, which checks them when it connects.
 */
const tlsOptions: Record<keyof ConnectOptions, true> = {
  ALPNCallback: true,
  SNICallback: true,
  allowPartialTrustChain: true,
  ca: true,
  cert: true,
  checkServerIdentity: true,
  ciphers: true,
  clientCertEngine: true,
  crl: true,
  dhparam: true,
  ecdhCurve: true,
  enableTrace: true,
  honorCipherOrder: true,
  key: true,
  lookup: true,
  maxVersion: true,
  minDHSize: true,
  minVersion: true,
  passphrase: true,
  pfx: true,
  privateKeyEngine: true,
  privateKeyIdentifier: true,
  pskCallback: true,
  rejectUnauthorized: true,
  requestCert: true,
  secureContext: true,
  secureOptions: true,
  secureProtocol: true,
  servername: true,
  session: true,
  sessionIdContext: true,
  sessionTimeout: true,
  sigalgs: true,
  ticketKeys: true,
  timeout: true,
}

/** tls.connect options drainpipe sets itself, with the reason (`ConnectOptions` omits them). */
const setByDrainpipe: Record<string, string> = {
  host: "the URL's host (and 'lookup') decide where to connect",
  port: "the URL's port decides where to connect",
  path: 'drainpipe connects over TCP',
  socket: 'drainpipe opens its own sockets',
  ALPNProtocols: 'drainpipe offers h2 (and http/1.1) itself',
}

const keepAliveKinds: Record<keyof KeepAliveOptions, Kind> = { interval: 'duration', timeout: 'duration', whenIdle: 'boolean' }
const backoffKinds: Record<keyof BackoffOptions, Kind> = { base: 'duration', max: 'duration' }
const outlierKinds: Record<keyof OutlierDetectionOptions, Kind> = {
  consecutiveFailures: 'positive',
  countServerErrors: 'boolean',
  baseEjectionTime: 'duration',
  maxEjectionTime: 'duration',
  maxEjectionPercent: 'percent',
}
const slowStartKinds: Record<keyof SlowStartOptions, Kind> = { window: 'duration', minWeight: 'fraction' }

export const show = (value: unknown): string => {
  if (typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'function') return 'a function'
  if (value === null) return 'null'
  if (typeof value === 'object') return Array.isArray(value) ? 'an array' : 'an object'
  return String(value)
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1))
      diagonal = above
    }
  }
  return row[b.length]!
}

function unknownKey(where: string, key: string, known: readonly string[]): InvalidOptionError {
  const [best] = known
    .map((name) => ({ name, distance: editDistance(key, name) }))
    .sort((x, y) => x.distance - y.distance)
  let hint = best && best.distance <= Math.max(2, Math.floor(key.length / 3)) ? ` (did you mean '${where}${best.name}'?)` : ''
  // `timeout` is a word of several names (and a TLS option that would not do what it seems to).
  const containing = key.length >= 4 ? known.filter((name) => name.toLowerCase().includes(key.toLowerCase())) : []
  if (!hint && containing.length > 0) hint = ` (did you mean ${containing.map((name) => `'${where}${name}'`).join(', ')}?)`
  // `new Client({ ca })`: TLS options written where tls.connect would take them.
  if (!hint && Object.hasOwn(tlsOptions, key) && known.includes('connect')) {
    hint = `: TLS options go inside '${where}connect' (${where}connect: { ${key}: … })`
  }
  return new InvalidOptionError(`Unknown option '${where}${key}'${hint}`)
}

export function checkKind(name: string, kind: Kind, value: unknown): void {
  const fail = (expected: string) =>
    new InvalidOptionError(`Option '${name}' must be ${expected}, got ${show(value)}`)
  switch (kind) {
    case 'duration':
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
        throw fail('a non-negative finite number of milliseconds')
      }
      return
    case 'count':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw fail('a non-negative integer')
      return
    case 'positive':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) throw fail('an integer of at least 1')
      return
    case 'percent':
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 100) throw fail('a percentage from 0 to 100')
      return
    case 'fraction':
      if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > 1) throw fail('a number greater than 0 and at most 1')
      return
    case 'boolean':
      if (typeof value !== 'boolean') throw fail('a boolean')
      return
    case 'function':
      if (typeof value !== 'function') throw fail('a function')
      return
    case 'object':
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw fail('an object')
      return
    case 'engine':
      if (!engineNames.includes(value as EngineName)) throw fail(engineNames.map((name) => `'${name}'`).join(' or '))
      return
    case 'keepAlive':
      if (value === false) return
      checkKind(name, 'object', value)
      checkKeys(value as object, `${name}.`, keepAliveKinds)
      return
    case 'backoff':
      checkKind(name, 'object', value)
      checkKeys(value as object, `${name}.`, backoffKinds)
      return
    case 'outliers':
    case 'slowStart':
      if (value === false) return
      checkKind(name, 'object', value)
      checkKeys(value as object, `${name}.`, kind === 'outliers' ? outlierKinds : slowStartKinds)
      return
    case 'tls':
      checkKind(name, 'object', value)
      for (const key of Object.keys(value as object)) {
        if (Object.hasOwn(tlsOptions, key)) continue
        if (Object.hasOwn(setByDrainpipe, key)) throw new InvalidOptionError(`Option '${name}.${key}' cannot be set: ${setByDrainpipe[key]}`)
        throw unknownKey(`${name}.`, key, Object.keys(tlsOptions))
      }
  }
}

export function checkKeys(options: object, where: string, kinds: Record<string, Kind>): void {
  const known = Object.keys(kinds)
  for (const [key, value] of Object.entries(options)) {
    const kind = kinds[key]
    if (kind === undefined) throw unknownKey(where, key, known)
    if (value !== undefined) checkKind(`${where}${key}`, kind, value)
  }
}

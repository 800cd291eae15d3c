import { describe, expect, it } from 'vitest'
import { Client, InvalidOptionError, type ClientOptions } from '../lib/index.js'
import { Config } from '../lib/options.js'

const rejects = (options: unknown, message: RegExp | string) => {
  let error: unknown
  try {
    new Client(options as ClientOptions)
  } catch (caught) {
    error = caught
  }
  expect(error).toBeInstanceOf(InvalidOptionError)
  expect((error as InvalidOptionError).code).toBe('DRAINPIPE_INVALID_OPTION')
  if (typeof message === 'string') expect((error as Error).message).toBe(message)
  else expect((error as Error).message).toMatch(message)
}

describe('option validation at construction', () => {
  it('defaults and a lone maxConnectionAge never trip a rule', async () => {
    for (const options of [{}, { maxConnectionAge: 1 }, { maxConnectionAge: 60_000 }, { maxConnectionAge: 10, idleTimeout: 0 }]) {
      await new Client(options).close()
    }
  })

  it.each([
    [{ maxConectionAge: 1000 }, "Unknown option 'maxConectionAge' (did you mean 'maxConnectionAge'?)"],
    [{ cuont: 2 }, "Unknown option 'cuont' (did you mean 'count'?)"],
    [{ wholly: 1 }, "Unknown option 'wholly'"],
    [{ keepAlive: { intervall: 5 } }, "Unknown option 'keepAlive.intervall' (did you mean 'keepAlive.interval'?)"],
    [{ outlierDetection: { consecutiveFailure: 3 } }, "Unknown option 'outlierDetection.consecutiveFailure' (did you mean 'outlierDetection.consecutiveFailures'?)"],
    [{ outlierDetection: { baseEjectionTme: 3 } }, "Unknown option 'outlierDetection.baseEjectionTme' (did you mean 'outlierDetection.baseEjectionTime'?)"],
    [{ slowStart: { windowMs: 3 } }, "Unknown option 'slowStart.windowMs' (did you mean 'slowStart.window'?)"],
    [{ outlierDetecton: false }, "Unknown option 'outlierDetecton' (did you mean 'outlierDetection'?)"],
  ])('unknown key %j', (options, message) => rejects(options, message))

  it.each([
    [{ maxConnectionAge: -1 }, "Option 'maxConnectionAge' must be a non-negative finite number of milliseconds, got -1"],
    [{ drainTimeout: Number.NaN }, "Option 'drainTimeout' must be a non-negative finite number of milliseconds, got NaN"],
    [{ connectTimeout: Number.POSITIVE_INFINITY }, "Option 'connectTimeout' must be a non-negative finite number of milliseconds, got Infinity"],
    [{ recycleCooldown: '30s' }, 'Option \'recycleCooldown\' must be a non-negative finite number of milliseconds, got "30s"'],
    [{ count: 0 }, "Option 'count' must be an integer of at least 1, got 0"],
    [{ count: 1.5 }, "Option 'count' must be an integer of at least 1, got 1.5"],
    [{ retries: -1 }, "Option 'retries' must be a non-negative integer, got -1"],
    [{ h2c: 'yes' }, 'Option \'h2c\' must be a boolean, got "yes"'],
    [{ lookup: 'dns' }, 'Option \'lookup\' must be a function, got "dns"'],
    [{ connect: null }, "Option 'connect' must be an object, got null"],
    [{ keepAlive: { timeout: -5 } }, "Option 'keepAlive.timeout' must be a non-negative finite number of milliseconds, got -5"],
    [{ keepAlive: { whenIdle: 1 } }, "Option 'keepAlive.whenIdle' must be a boolean, got 1"],
    [{ outlierDetection: true }, "Option 'outlierDetection' must be an object, got true"],
    [{ outlierDetection: { consecutiveFailures: 0 } }, "Option 'outlierDetection.consecutiveFailures' must be an integer of at least 1, got 0"],
    [{ outlierDetection: { countServerErrors: 'yes' } }, 'Option \'outlierDetection.countServerErrors\' must be a boolean, got "yes"'],
    [{ outlierDetection: { maxEjectionPercent: 101 } }, "Option 'outlierDetection.maxEjectionPercent' must be a percentage from 0 to 100, got 101"],
    [{ outlierDetection: { maxEjectionTime: -1 } }, "Option 'outlierDetection.maxEjectionTime' must be a non-negative finite number of milliseconds, got -1"],
    [{ slowStart: { minWeight: 0 } }, "Option 'slowStart.minWeight' must be a number greater than 0 and at most 1, got 0"],
    [{ slowStart: { minWeight: 1.5 } }, "Option 'slowStart.minWeight' must be a number greater than 0 and at most 1, got 1.5"],
    [{ slowStart: 5000 }, "Option 'slowStart' must be an object, got 5000"],
  ])('wrong type or value %j', (options, message) => rejects(options, message))

  it.each([
    [{ maxConnectionAge: 1000, maxConnectionAgeJitter: 2000 }, "Option 'maxConnectionAgeJitter' (2000) must not be larger than 'maxConnectionAge' (1000)"],
    [{ maxConnectionAgeJitter: 500 }, "Option 'maxConnectionAgeJitter' (500) has no effect without 'maxConnectionAge'"],
    [{ maxConnectionAge: 1000, idleTimeout: 1000 }, "Option 'idleTimeout' (1000) must be shorter than 'maxConnectionAge' (1000), or it never takes effect"],
    [{ keepAlive: { interval: 1000, timeout: 1000 } }, "Option 'keepAlive.timeout' (1000) must be shorter than 'keepAlive.interval' (1000)"],
    [{ keepAlive: { interval: 5000 } }, "Option 'keepAlive.timeout' (10000) must be shorter than 'keepAlive.interval' (5000)"],
    [{ retries: 11 }, "Option 'retries' must be at most 10, got 11"],
    [{ reconnectBackoff: { base: 5000, max: 1000 } }, "Option 'reconnectBackoff.base' (5000) must not be larger than 'reconnectBackoff.max' (1000)"],
    [
      { outlierDetection: { maxEjectionTime: 1000 } },
      "Option 'outlierDetection.baseEjectionTime' (2000) must not be larger than 'outlierDetection.maxEjectionTime' (1000)",
    ],
    [
      { outlierDetection: { baseEjectionTime: 0 } },
      "Option 'outlierDetection.baseEjectionTime' must be more than 0 (an ejection would end at once); 'outlierDetection: false' turns ejection off",
    ],
  ])('combination that cannot take effect %j', (options, message) => rejects(options, message))

  it('applies the same rules to every entry of origins, naming the origin', () => {
    rejects({ origins: { 'https://a.test': { maxConectionAge: 5 } } }, "Unknown option 'origins['https://a.test'].maxConectionAge' (did you mean 'origins['https://a.test'].maxConnectionAge'?)")
    rejects({ origins: { 'https://a.test': { count: 0 } } }, "Option 'origins['https://a.test'].count' must be an integer of at least 1, got 0")
    rejects(
      { maxConnectionAge: 60_000, maxConnectionAgeJitter: 5000, origins: { 'https://a.test': { maxConnectionAge: 1000 } } },
      "origins['https://a.test']: Option 'maxConnectionAgeJitter' (5000) must not be larger than 'maxConnectionAge' (1000)",
    )
    rejects({ origins: { 'https://a.test': { origins: {} } } }, /Unknown option 'origins\['https:\/\/a.test'\]\.origins'/)
  })

  it.each([
    ['not a url', "Invalid origin key in option 'origins' 'not a url': not a URL"],
    ['ftp://a.test', "Invalid origin key in option 'origins' 'ftp://a.test': the scheme must be https: or http:"],
    ['https://a.test/path', "Invalid origin key in option 'origins' 'https://a.test/path': an origin is scheme://host[:port], without path, query or credentials"],
  ])('rejects the origin key %s', (key, message) => rejects({ origins: { [key]: {} } }, message))

  it('outlierDetection and slowStart: defaults, partial objects over them, false, and per-origin overrides', () => {
    const config = new Config({
      outlierDetection: { consecutiveFailures: 3 },
      origins: { 'https://a.test': { outlierDetection: false, slowStart: { window: 1000 } }, 'https://b.test': { outlierDetection: { maxEjectionPercent: 100 } } },
    })
    expect(config.for('https://other.test')).toMatchObject({
      outlierDetection: { consecutiveFailures: 3, countServerErrors: true, baseEjectionTime: 2000, maxEjectionTime: 30_000, maxEjectionPercent: 50 },
      slowStart: { window: 5000, minWeight: 0.1 },
    })
    expect(config.for('https://a.test')).toMatchObject({ outlierDetection: false, slowStart: { window: 1000, minWeight: 0.1 } })
    // An origin's object replaces the client's value key by key, over the defaults.
    expect(config.for('https://b.test').outlierDetection).toMatchObject({ consecutiveFailures: 5, maxEjectionPercent: 100 })
    rejects({ origins: { 'https://a.test': { slowStart: { minWeight: -1 } } } }, "Option 'origins['https://a.test'].slowStart.minWeight' must be a number greater than 0 and at most 1, got -1")
  })

  it('non-object options are rejected', () => {
    rejects('fast', 'Client options must be an object, got "fast"')
  })
})

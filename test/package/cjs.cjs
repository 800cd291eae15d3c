// A CommonJS consumer of the installed package (run by check.sh): require()
// of the ESM build (Node >= 20.19, or --experimental-require-module before).
const assert = require('node:assert/strict')
const main = require('drainpipe-http2')
const grpc = require('drainpipe-http2/grpc')
const testing = require('drainpipe-http2/testing')
const msw = require('msw')
const { name } = require('drainpipe-http2/package.json')

assert.equal(name, 'drainpipe-http2')
;(async () => {
  // No dual-package hazard: import() and require() give the same classes.
  const imported = await import('drainpipe-http2')
  assert.equal(imported.DrainpipeError, main.DrainpipeError)
  assert.equal(imported.Client, main.Client)
  const { exercise } = await import('./scenario.mjs')
  await exercise('cjs', { main, testing, grpc, msw })
  console.log(`cjs.cjs: ok on Node ${process.version}`)
})().catch((error) => {
  console.error(error)
  process.exitCode = 1
})

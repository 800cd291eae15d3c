// TypeScript's classic resolution (module commonjs, moduleResolution node10)
// ignores package.json "exports": it finds the main entry's types through the
// top-level "types" field only, and cannot see the subpaths. check.sh compiles
// this strictly and runs it.
import { Client, type ErrorCode } from 'drainpipe-http2'

const code: ErrorCode = 'DRAINPIPE_INVALID_OPTION'
let caught: unknown
try {
  new Client({ count: 0 })
} catch (error) {
  caught = error
}
if ((caught as { code?: unknown } | undefined)?.code !== code) throw new Error(`expected ${code}, got ${String(caught)}`)
console.log(`node10.js: ok on Node ${process.version}`)

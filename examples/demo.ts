/**
 * npm run demo [-- --quick] [--out chart.svg] [--json summary.json] [--count 6] [--no-live]
 *
 * A headless service on loopback: an in-repo DNS server, HTTP/2 backends on
 * 127.0.0.x, steady load through drainpipe and through undici's Agent
 * (allowH2). The backends scale out 3 → 6, one leaves and comes back; then
 * the backend undici's connection is on becomes 25× slower, then fails every
 * request. A live view shows each client's share of requests per backend,
 * p99 and failures, and at the end a chart (SVG) and a summary: time until
 * balanced (max/min share ≤ 1.2), p50/p99 while a backend is slow, failed
 * requests while one fails. See examples/demo/run.ts for the timeline.
 *
 * Needs nothing but Node and the repository's dev dependencies; no network
 * beyond 127.0.0.0/8. About 70 s (27 s with --quick).
 */
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { runDemo } from './demo/run.js'

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    out: { type: 'string' },
    json: { type: 'string' },
    count: { type: 'string', default: '6' },
    live: { type: 'boolean' },
    'no-live': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
})

if (values.help) {
  process.stdout.write(`Usage: npm run demo -- [options]
  --quick         a shorter run: connection age 1 s, about 27 s (default: age 3 s, about 70 s)
  --out <file>    where to write the chart (SVG); default: ${join(tmpdir(), 'drainpipe-demo-chart.svg')}
  --json <file>   also write the summary as JSON
  --count <n>     drainpipe's connections per origin (default 6)
  --no-live       one line per second instead of the live view (the default when stdout is not a terminal)
`)
  process.exit(0)
}

const count = Number(values.count)
if (!Number.isSafeInteger(count) || count < 1) {
  process.stderr.write(`--count must be a positive integer, got ${values.count}\n`)
  process.exit(2)
}

const { ok } = await runDemo({
  quick: values.quick,
  out: values.out ?? join(tmpdir(), 'drainpipe-demo-chart.svg'),
  json: values.json,
  live: values['no-live'] ? false : (values.live ?? process.stdout.isTTY === true),
  count,
})
process.exit(ok ? 0 : 1)

import { defineConfig } from 'vitest/config'

// examples/*.test.ts are documented examples, run as they are shown: npx vitest run examples/testing-with-msw.test.ts
const include = ['test/**/*.test.ts', 'examples/**/*.test.ts']

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Real servers on loopback: keep files in separate processes, two at a time (the machines have 2 cores).
    pool: 'forks',
    maxWorkers: 2,
    // The whole suite runs on both HTTP/2 engines (DRAINPIPE_ENGINE is the default's switch; child
    // processes the tests start inherit it). test/wire tests the wire engine itself, and test/unit the
    // lifecycle's pure parts with no engine at all: once each.
    projects: [
      { extends: true, test: { name: 'wire', include, env: { DRAINPIPE_ENGINE: 'wire' } } },
      { extends: true, test: { name: 'node', include, exclude: ['test/wire/**', 'test/unit/**'], env: { DRAINPIPE_ENGINE: 'node' } } },
    ],
  },
})

import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    // examples/*.test.ts are documented examples, run as they are shown: npx vitest run examples/testing-with-msw.test.ts
    include: ['test/**/*.test.ts', 'examples/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Real servers on loopback: keep files in separate processes, two at a time (the machines have 2 cores).
    pool: 'forks',
    maxWorkers: 2,
  },
})

import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Real servers on loopback: keep files in separate processes, two at a time (the machines have 2 cores).
    pool: 'forks',
    maxWorkers: 2,
  },
})

import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // integration files each build their own namespaces; two cores, so two files at a time at most
    pool: 'forks',
    maxWorkers: 2,
    // integration tests start processes (natd, real clients, scapy) that take seconds each on a loaded CI machine:
    // at load 11, tests with the 30 s default took 14-22 s (50's invalid specs 18 s, 56's stop 14 s, 37's events 22 s)
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});

// Vitest runs only Keyv's official adapter suite (@keyv/test-suite is written for vitest);
// keyv-suite.test.ts spawns it from `npm test`. Everything else runs under node's test runner.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: new URL('../..', import.meta.url).pathname,
    include: ['test/keyv/**/*.vitest.ts'],
    watch: false,
    testTimeout: 20_000,
  },
});

import { afterEach, expect } from 'vitest';
import { leakedHarnesses } from './helpers/harness.js';

// Runs after each test's own hooks: a test that leaves workers, pools or connections open fails.
afterEach(() => {
  expect(leakedHarnesses(), 'harnesses left open by the test').toBe(0);
});

import { describe, expect, it } from 'vitest';
import { useHarness } from '../helpers/harness.js';
import { runFuzz } from '../fuzz/run.js';

/**
 * The seeded short fuzz run (test/fuzz/): about 1,500 generated requests over every operation of
 * the OpenAPI document and hostile events on both socket namespaces; no 5xx, no uncaught error,
 * nothing stored for a 4xx. `npm run fuzz` runs the long one (FUZZ_RUNS, FUZZ_SEED; FUZZ_ONLY and
 * FUZZ_PATH replay a failure it printed).
 */

const runs = Number(process.env.FUZZ_RUNS ?? 1_500);
const seed = Number(process.env.FUZZ_SEED ?? 20_261_203);

describe('fuzz', () => {
  const h = useHarness();

  it(
    `answers ${runs} generated requests (seed ${seed}) below 500, storing nothing for a 4xx`,
    async () => {
      const report = await runFuzz(h(), {
        seed,
        runs,
        socketRuns: Math.max(50, Math.round(runs / 20)),
        only: process.env.FUZZ_ONLY,
        verbose: process.env.FUZZ_VERBOSE === '1',
        path: process.env.FUZZ_PATH,
        log: line => console.log(line),
      });
      expect(report.failures).toEqual([]);
      expect(report.byClass['5xx'] ?? 0).toBe(0);
      expect(report.requests).toBeGreaterThanOrEqual(process.env.FUZZ_ONLY ? 1 : runs);
    },
    60_000 + runs * 200,
  );
});

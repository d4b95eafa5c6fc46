/**
 * `npm run chaos`: the hub's processes against a private PostgreSQL and a private Redis, under
 * chat, SMS and webhook traffic, one fault per scenario; per channel it counts what was accepted,
 * persisted, delivered, lost and duplicated. See docs/reliability.md ("Chaos suite").
 *
 * Knobs, as variables or `--name=value` flags (`--scenarios=worker-kill,api-kill`):
 * CHAOS_SCENARIOS (all), CHAOS_APIS (2), CHAOS_WORKERS (2), CHAOS_SECONDS (30 of traffic),
 * CHAOS_RATE (80 sends/s), CHAOS_CONCURRENCY (20 in flight), CHAOS_SESSIONS (40 chats),
 * CHAOS_SMS_SHARE (0.2), CHAOS_OUTAGE_SECONDS (5), CHAOS_FREEZE_SECONDS (20),
 * CHAOS_SETTLE_SECONDS (120), CHAOS_SEED (1), CHAOS_BUILT (1: dist/; 0: sources through tsx).
 * Exits 1 when a scenario lost anything, a duplicate changed its id, or a process crashed.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { faultsNamed } from './faults.js';
import { markdownTable, printReport } from './report.js';
import { passed, runScenario, type ScenarioResult } from './scenario.js';

const flags = new Map(
  process.argv
    .slice(2)
    .map(arg => /^--([a-z-]+)=(.*)$/.exec(arg))
    .filter(m => m !== null)
    .map(m => [`CHAOS_${(m[1] as string).toUpperCase().replace(/-/g, '_')}`, m[2] as string]),
);
const knob = (name: string) => flags.get(name) ?? process.env[name];
const number = (name: string, fallback: number) => {
  const value = Number(knob(name) ?? fallback);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a number`);
  return value;
};

const scenarios = faultsNamed(knob('CHAOS_SCENARIOS')?.split(',').filter(Boolean));
const options = {
  apis: number('CHAOS_APIS', 2),
  workers: number('CHAOS_WORKERS', 2),
  compiled: knob('CHAOS_BUILT') !== '0',
  durationMs: number('CHAOS_SECONDS', 30) * 1000,
  rate: number('CHAOS_RATE', 80),
  concurrency: number('CHAOS_CONCURRENCY', 20),
  sessions: number('CHAOS_SESSIONS', 40),
  smsShare: number('CHAOS_SMS_SHARE', 0.2),
  outageMs: number('CHAOS_OUTAGE_SECONDS', 5) * 1000,
  freezeMs: number('CHAOS_FREEZE_SECONDS', 20) * 1000,
  settleMs: number('CHAOS_SETTLE_SECONDS', 120) * 1000,
  seed: number('CHAOS_SEED', 1),
};

process.stderr.write(
  `chaos: ${options.apis} API + ${options.workers} worker processes, ${options.rate} sends/s for ${options.durationMs / 1000} s, scenarios ${scenarios.map(s => s.name).join(', ')}\n`,
);
const results: ScenarioResult[] = [];
for (const fault of scenarios) {
  const result = await runScenario(fault, options);
  results.push(result);
  process.stderr.write(`  ${fault.name}: ${passed(result) ? 'ok' : 'FAIL'}\n`);
}
printReport(results);
mkdirSync('bench/results', { recursive: true });
const file = `bench/results/chaos-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
writeFileSync(
  file,
  JSON.stringify({ options, results, markdown: markdownTable(results) }, null, 2),
);
console.log(`results: ${file}`);
const failed = results.filter(r => !passed(r));
if (failed.length > 0) {
  console.error(`FAILED: ${failed.map(r => r.scenario).join(', ')}`);
  process.exit(1);
}
process.exit(0);

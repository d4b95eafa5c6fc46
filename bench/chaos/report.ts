import { printTable } from '../measure.js';
import { passed, type ScenarioResult } from './scenario.js';

/** Answers other than 2xx, as counted: `503 chat NEXUS_ERR_DB_BUSY×12 network×3`. */
function failures(answers: Record<string, number>): string {
  const parts = Object.entries(answers)
    .filter(([kind]) => kind !== '2xx')
    .map(([kind, n]) => `${kind}×${n}`);
  return parts.length > 0 ? parts.join(' ') : '-';
}

/** One row per scenario and channel, as docs/reliability.md shows them. */
export function reportRows(results: readonly ScenarioResult[]): string[][] {
  const rows: string[][] = [
    [
      'scenario',
      'channel',
      'accepted',
      'persisted',
      'delivered',
      'lost',
      'duplicates',
      'same id',
      'failed answers',
      'crashes',
      'settle s',
      'result',
    ],
  ];
  for (const r of results) {
    if (r.error) {
      rows.push([r.scenario, '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', 'ERROR']);
      continue;
    }
    for (const [i, c] of r.counts.entries()) {
      rows.push([
        i === 0 ? r.scenario : '',
        c.channel,
        String(c.accepted),
        String(c.persisted),
        String(c.delivered),
        String(c.lost),
        String(c.duplicates),
        c.unstable === 0 ? 'yes' : `NO (${c.unstable})`,
        i === 0 ? failures(r.answers) : '',
        i === 0 ? String(r.unexpectedExits) : '',
        i === 0 ? (r.settleMs / 1000).toFixed(1) : '',
        i === 0 ? (passed(r) ? 'ok' : 'FAIL') : '',
      ]);
    }
  }
  return rows;
}

export function printReport(results: readonly ScenarioResult[]): void {
  printTable(reportRows(results));
  for (const r of results) {
    if (r.error) console.log(`${r.scenario}: ${r.error}`);
    if (r.notes.length > 0) console.log(`${r.scenario}: ${r.notes.join('; ')}`);
  }
}

/** The same rows as a Markdown table (for docs/reliability.md). */
export function markdownTable(results: readonly ScenarioResult[]): string {
  const rows = reportRows(results);
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  return [
    line(rows[0] ?? []),
    line((rows[0] ?? []).map(() => '---')),
    ...rows.slice(1).map(line),
  ].join('\n');
}

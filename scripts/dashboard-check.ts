/**
 * The Grafana dashboard the nexus chart ships (helm/nexus/dashboards/nexus.json), as
 * `npm run chart:check` checks it. Every query (each panel target's `expr` and each query
 * variable's expression) has its Grafana variables replaced by PromQL stand-ins and is parsed by
 * `promtool check rules`, as a recording rule of a temporary rules file. Every metric a query
 * reads must be one the hub registers (lib/metrics.ts; a histogram's `_bucket`, `_sum` and `_count`
 * series count as its own), and every label it matches or groups by one that metric has or that
 * Prometheus adds to a scraped target, so a renamed metric or label fails the check. Every panel
 * must have a title and read the dashboard's `${datasource}` variable.
 *
 * test/integration/grafana-dashboard.test.ts runs it on the file and on broken copies.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Histogram, Summary } from 'prom-client';
import { stringify } from 'yaml';
import { registry } from '../lib/metrics.js';
import { findPromtool } from './rules-check.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The dashboard's JSON, which templates/dashboard-configmap.yaml puts in a ConfigMap. */
export const DASHBOARD = path.join(REPO, 'helm', 'nexus', 'dashboards', 'nexus.json');

/**
 * Labels Prometheus gives every series of a ServiceMonitor's targets. A metric's own label of the
 * same name is kept as `exported_<name>` (honorLabels is off).
 */
const TARGET_LABELS = ['namespace', 'job', 'service', 'pod', 'container', 'endpoint', 'instance'];

/** Stand-ins for Grafana's built-in variables: each is a duration or a number where it is used. */
const BUILT_INS: Record<string, string> = {
  __rate_interval: '5m',
  __interval: '1m',
  __range: '1h',
  __rate_interval_ms: '300000',
  __interval_ms: '60000',
  __range_s: '3600',
  __range_ms: '3600000',
};

interface Target {
  expr?: unknown;
  refId?: string;
  datasource?: unknown;
}
interface Panel {
  id?: unknown;
  type?: string;
  title?: unknown;
  datasource?: unknown;
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  name?: string;
  type?: string;
  query?: unknown;
  datasource?: unknown;
}
interface Dashboard {
  panels?: Panel[];
  templating?: { list?: Variable[] };
}

/** One query of the dashboard: where it is, and its PromQL expression. */
export interface DashboardQuery {
  where: string;
  expr: string;
}

/** Every panel, rows and the panels of collapsed rows included, in order. */
function allPanels(panels: Panel[] = []): Panel[] {
  return panels.flatMap(panel => [panel, ...allPanels(panel.panels)]);
}

const variableQuery = (variable: Variable): string | undefined => {
  const query = variable.query;
  if (typeof query === 'string') return query;
  if (query && typeof query === 'object' && 'query' in query) {
    return typeof query.query === 'string' ? query.query : undefined;
  }
  return undefined;
};

/**
 * The PromQL of a query variable: `label_values(<selector>, <label>)` becomes
 * `count by (<label>) (<selector>)`, so the label is checked too; `query_result(<expr>)` is its
 * expression; `label_values(<label>)`, `label_names()` and `metrics(<regex>)` have none.
 */
function variableExpression(query: string): string | undefined {
  const labelValues = /^\s*label_values\(\s*([\s\S]+),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$/.exec(
    query,
  );
  if (labelValues) return `count by (${labelValues[2]}) (${labelValues[1]})`;
  const result = /^\s*query_result\(([\s\S]+)\)\s*$/.exec(query);
  if (result) return result[1];
  return undefined;
}

/** Every query of the dashboard: the panels' targets, then the query variables. */
export function dashboardQueries(dashboard: Dashboard): DashboardQuery[] {
  const queries: DashboardQuery[] = [];
  for (const panel of allPanels(dashboard.panels)) {
    for (const target of panel.targets ?? []) {
      if (typeof target.expr !== 'string' || target.expr.trim() === '') continue;
      queries.push({
        where: `panel "${String(panel.title)}" (${target.refId ?? '?'})`,
        expr: target.expr,
      });
    }
  }
  for (const variable of dashboard.templating?.list ?? []) {
    if (variable.type !== 'query') continue;
    const query = variableQuery(variable);
    const expr = query === undefined ? undefined : variableExpression(query);
    if (expr) queries.push({ where: `variable ${variable.name ?? '?'}`, expr });
  }
  return queries;
}

const STRING = /"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g;
const VARIABLE = /\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]/g;

/**
 * The expression with Grafana's variables replaced by what PromQL parses: the built-ins by a
 * duration or a number, the dashboard's variables by `x` inside a string (a label value or regex)
 * and by 1 outside one. Anything else that looks like a variable (`$1` of label_replace) stays.
 */
export function substituteVariables(expr: string, variables: ReadonlySet<string>): string {
  const replace = (text: string, inString: boolean) =>
    text.replace(VARIABLE, (match, a?: string, b?: string, c?: string) => {
      const name = a ?? b ?? c ?? '';
      const builtIn = BUILT_INS[name];
      if (builtIn !== undefined) return builtIn;
      if (!variables.has(name)) return match;
      return inString ? 'x' : '1';
    });
  let out = '';
  let last = 0;
  for (const match of expr.matchAll(STRING)) {
    out += replace(expr.slice(last, match.index), false) + replace(match[0], true);
    last = match.index + match[0].length;
  }
  return out + replace(expr.slice(last), false);
}

/** The metrics an expression reads (with the labels its selectors match) and the labels it groups by. */
export interface ExpressionNames {
  selectors: { metric: string | undefined; labels: string[] }[];
  grouping: string[];
}

/** Operators and aggregations: never a metric name (an aggregation may precede `by (...)`). */
const KEYWORDS = new Set([
  ...['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan', 'atan2'],
  ...['sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values'],
  ...['bottomk', 'topk', 'quantile', 'limitk', 'limit_ratio'],
]);
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

/**
 * The names a PromQL expression uses, read by a small tokenizer: an identifier that is not a
 * keyword, not a function (followed by `(`) and not inside braces, brackets or a string is a
 * metric name; braces hold label matchers; `by (...)`, `on (...)` and the like list labels.
 */
export function expressionNames(expr: string): ExpressionNames {
  const selectors: ExpressionNames['selectors'] = [];
  const grouping: string[] = [];
  let i = 0;
  const skipSpace = () => {
    while (i < expr.length) {
      if (/\s/.test(expr[i] ?? '')) i++;
      else if (expr[i] === '#') while (i < expr.length && expr[i] !== '\n') i++;
      else break;
    }
  };
  const skipString = () => {
    const quote = expr[i];
    i++;
    while (i < expr.length && expr[i] !== quote) i += expr[i] === '\\' && quote !== '`' ? 2 : 1;
    i++;
  };
  const identifier = () => {
    const match = /^[A-Za-z_:][A-Za-z0-9_:]*/.exec(expr.slice(i));
    if (match) i += match[0].length;
    return match?.[0];
  };
  /** Label matchers from `{` to its `}`; a `__name__="..."` matcher names the metric. */
  const matchers = (): { labels: string[]; name?: string } => {
    const labels: string[] = [];
    let name: string | undefined;
    i++;
    for (;;) {
      skipSpace();
      if (i >= expr.length || expr[i] === '}') break;
      if (expr[i] === ',') {
        i++;
        continue;
      }
      const label = identifier();
      if (!label) {
        i++;
        continue;
      }
      skipSpace();
      const operator = /^(=~|!~|!=|=)/.exec(expr.slice(i))?.[0] ?? '';
      i += operator.length;
      skipSpace();
      const start = i;
      if (expr[i] === '"' || expr[i] === "'" || expr[i] === '`') skipString();
      if (label === '__name__' && operator === '=') name = expr.slice(start + 1, i - 1);
      else labels.push(label);
    }
    i++;
    return { labels, name };
  };
  while (i < expr.length) {
    skipSpace();
    const char = expr[i] ?? '';
    if (char === '"' || char === "'" || char === '`') skipString();
    else if (char === '[') {
      while (i < expr.length && expr[i] !== ']') i++;
      i++;
    } else if (char === '{') {
      const { labels, name } = matchers();
      selectors.push({ metric: name, labels });
    } else if (/[0-9.]/.test(char)) {
      // A number or a duration (5m, 1e3, 0x1f).
      i += /^[0-9.][0-9A-Za-z_.]*/.exec(expr.slice(i))?.[0].length ?? 1;
    } else if (/[A-Za-z_:]/.test(char)) {
      const word = identifier() ?? '';
      skipSpace();
      if (GROUPING.has(word)) {
        if (expr[i] === '(') {
          const close = expr.indexOf(')', i);
          const list = expr.slice(i + 1, close === -1 ? undefined : close);
          grouping.push(
            ...list
              .split(',')
              .map(label => label.trim())
              .filter(Boolean),
          );
          i = close === -1 ? expr.length : close + 1;
        }
      } else if (KEYWORDS.has(word.toLowerCase()) || expr[i] === '(') {
        // An operator keyword, or a function or aggregation.
      } else if (expr[i] === '{') {
        selectors.push({ metric: word, labels: matchers().labels });
      } else {
        selectors.push({ metric: word, labels: [] });
      }
    } else i++;
  }
  return { selectors, grouping };
}

/** A series name the hub exports, and the labels its series carry once scraped. */
function registeredSeries(): Map<string, Set<string>> {
  const series = new Map<string, Set<string>>();
  for (const metric of registry.getMetricsAsArray()) {
    const own = (metric as { labelNames?: readonly string[] }).labelNames ?? [];
    const labels = new Set([
      ...own,
      ...TARGET_LABELS,
      ...own.filter(label => TARGET_LABELS.includes(label)).map(label => `exported_${label}`),
    ]);
    series.set(metric.name, labels);
    if (metric instanceof Histogram) {
      series.set(`${metric.name}_bucket`, new Set([...labels, 'le']));
      series.set(`${metric.name}_sum`, labels);
      series.set(`${metric.name}_count`, labels);
    } else if (metric instanceof Summary) {
      labels.add('quantile');
      series.set(`${metric.name}_sum`, labels);
      series.set(`${metric.name}_count`, labels);
    }
  }
  return series;
}

/**
 * Problems with the names the queries use: a metric the hub does not register, a selector's label
 * its metric does not have, a grouping label none of the query's metrics has.
 */
export function checkNames(queries: DashboardQuery[]): {
  problems: string[];
  metrics: Set<string>;
} {
  const series = registeredSeries();
  const problems: string[] = [];
  const metrics = new Set<string>();
  for (const { where, expr } of queries) {
    const { selectors, grouping } = expressionNames(expr);
    const known = new Set<string>(TARGET_LABELS);
    let allKnown = true;
    for (const { metric, labels } of selectors) {
      if (metric === undefined) {
        problems.push(`${where}: a selector without a metric name`);
        continue;
      }
      metrics.add(metric);
      const labelsOf = series.get(metric);
      if (!labelsOf) {
        problems.push(`${where}: ${metric} is not a metric the hub registers (lib/metrics.ts)`);
        allKnown = false;
        continue;
      }
      for (const label of labelsOf) known.add(label);
      for (const label of labels) {
        if (!labelsOf.has(label)) problems.push(`${where}: ${metric} has no label ${label}`);
      }
    }
    // Grouping labels are checked against the query's metrics only once those are all known.
    if (!allKnown) continue;
    for (const label of new Set(grouping)) {
      if (!known.has(label)) {
        problems.push(`${where}: no metric of the query has the label ${label}`);
      }
    }
  }
  return { problems, metrics };
}

const refersToVariable = (datasource: unknown) => {
  const uid = (datasource as { uid?: unknown } | null | undefined)?.uid;
  return uid === '${datasource}' || uid === '$datasource';
};

/**
 * Problems with the panels and variables: the `datasource` variable (a Prometheus data source),
 * every panel's title, datasource (the variable, not one installation's uid) and queries, unique
 * ids.
 */
export function lintPanels(dashboard: Dashboard): string[] {
  const problems: string[] = [];
  const variables = dashboard.templating?.list ?? [];
  const datasource = variables.find(variable => variable.name === 'datasource');
  if (datasource?.type !== 'datasource' || datasource.query !== 'prometheus') {
    problems.push('no "datasource" variable of type datasource for prometheus');
  }
  for (const variable of variables.filter(v => v.type === 'query')) {
    if (!refersToVariable(variable.datasource)) {
      problems.push(`variable ${variable.name ?? '?'}: its datasource is not \${datasource}`);
    }
  }
  const ids = new Set<unknown>();
  for (const panel of allPanels(dashboard.panels)) {
    const title = typeof panel.title === 'string' ? panel.title.trim() : '';
    const where = title ? `panel "${title}"` : `panel ${String(panel.id)}`;
    if (ids.has(panel.id)) problems.push(`${where}: id ${String(panel.id)} is used twice`);
    ids.add(panel.id);
    if (!title) problems.push(`${where}: no title`);
    if (panel.type === 'row') continue;
    if (!refersToVariable(panel.datasource)) {
      problems.push(`${where}: its datasource is not \${datasource}`);
    }
    const targets = panel.targets ?? [];
    if (targets.length === 0) problems.push(`${where}: no query`);
    for (const target of targets) {
      if (typeof target.expr !== 'string' || target.expr.trim() === '') {
        problems.push(`${where} (${target.refId ?? '?'}): no expr`);
      }
      if (target.datasource !== undefined && !refersToVariable(target.datasource)) {
        problems.push(`${where} (${target.refId ?? '?'}): its datasource is not \${datasource}`);
      }
    }
  }
  return problems;
}

/**
 * Runs `promtool check rules` on the queries, one recording rule each; returns the problems,
 * each naming its query (promtool numbers the rules from 1).
 */
export function parseWithPromtool(queries: DashboardQuery[], promtool: string): string[] {
  const dir = mkdtempSync(path.join(tmpdir(), 'nexus-dashboard-'));
  try {
    const rules = queries.map((query, index) => ({
      record: `nexus_dashboard:query_${index}`,
      expr: query.expr,
    }));
    writeFileSync(
      path.join(dir, 'rules.yaml'),
      stringify({ groups: [{ name: 'dashboard', rules }] }),
    );
    try {
      execFileSync(promtool, ['check', 'rules', 'rules.yaml'], { cwd: dir, stdio: 'pipe' });
      return [];
    } catch (error) {
      const { stdout, stderr } = error as { stdout?: Buffer; stderr?: Buffer };
      const output = `${stdout?.toString() ?? ''}${stderr?.toString() ?? ''}`;
      const problems = output
        .split('\n')
        .map(line => /rule (\d+), "[^"]*": (.*)$/.exec(line))
        .filter(match => match !== null)
        .map(match => {
          const query = queries[Number(match[1]) - 1];
          return `${query?.where ?? `query ${match[1]}`}: ${match[2]} (${query?.expr ?? ''})`;
        });
      return problems.length > 0 ? problems : [`promtool check rules failed:\n${output.trim()}`];
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The whole check of a dashboard file (the chart's by default); returns one line per step and
 * every problem found. Without promtool (PATH or /opt/promtool/promtool) that is a problem too.
 */
export function checkDashboard(
  file = DASHBOARD,
  promtool = findPromtool(),
): { lines: string[]; problems: string[] } {
  const name = path.relative(REPO, file);
  let dashboard: Dashboard;
  try {
    dashboard = JSON.parse(readFileSync(file, 'utf8')) as Dashboard;
  } catch (error) {
    return { lines: [], problems: [`dashboard ${name}: ${(error as Error).message}`] };
  }
  const lines: string[] = [];
  const problems: string[] = [];
  const report = (label: string, found: string[], ok: string) => {
    problems.push(...found.map(problem => `dashboard ${name}: ${problem}`));
    lines.push(`dashboard ${label}: ${found.length === 0 ? ok : `${found.length} problem(s)`}`);
  };

  const panels = allPanels(dashboard.panels);
  const rows = panels.filter(panel => panel.type === 'row').length;
  report(
    `${name}, ${panels.length - rows} panels in ${rows} rows, their titles and datasources`,
    lintPanels(dashboard),
    'ok',
  );

  const variables = new Set(
    (dashboard.templating?.list ?? []).flatMap(variable => (variable.name ? [variable.name] : [])),
  );
  const queries = dashboardQueries(dashboard).map(query => ({
    ...query,
    expr: substituteVariables(query.expr, variables),
  }));
  const names = checkNames(queries);
  report(
    `metrics of the ${queries.length} queries`,
    names.problems,
    `all ${names.metrics.size} registered by the hub, labels known`,
  );

  if (promtool) {
    report(
      `queries parsed by promtool check rules`,
      parseWithPromtool(queries, promtool),
      `${queries.length} ok`,
    );
  } else {
    problems.push(
      `dashboard ${name}: promtool not found (PATH, /opt/promtool/promtool), so its queries are not parsed; .ci/run unpacks it from Debian's prometheus package`,
    );
  }
  return { lines, problems };
}

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GUIDE_VALUES, renderChart, type K8sObject } from '../../scripts/chart-check.js';
import {
  DASHBOARD,
  checkDashboard,
  expressionNames,
  substituteVariables,
} from '../../scripts/dashboard-check.js';
import { findPromtool } from '../../scripts/rules-check.js';

/** CI must parse the queries: without promtool the test fails there instead of skipping. */
const promtool = findPromtool();
const inCi = process.env['CI'] === 'true';

interface Target {
  expr: string;
  refId: string;
  datasource?: unknown;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: unknown;
  targets?: Target[];
}
interface Dashboard {
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown }[] };
}

const readDashboard = () => JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
const dashboardMap = (objects: K8sObject[]) =>
  objects.find(o => o.kind === 'ConfigMap' && o.metadata.name === 'nexus-dashboard');

const dir = mkdtempSync(path.join(tmpdir(), 'nexus-dashboard-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A copy of the dashboard with one panel's first query changed, written to a temporary file. */
function brokenCopy(name: string, change: (dashboard: Dashboard) => void): string {
  const dashboard = readDashboard();
  change(dashboard);
  const file = path.join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(dashboard, null, 2));
  return file;
}
const panel = (dashboard: Dashboard, title: string) => {
  const found = dashboard.panels.find(p => p.title === title);
  if (!found?.targets?.[0]) throw new Error(`no panel "${title}" with a query`);
  return found as Panel & { targets: [Target, ...Target[]] };
};

describe('the dashboard ConfigMap', () => {
  it('renders with monitoring on, labelled for the Grafana sidecar, holding the file', () => {
    const objects = renderChart({ name: "the guide's values", valueFiles: [GUIDE_VALUES] });
    const map = dashboardMap(objects);
    expect(map).toBeDefined();
    expect(map!.metadata.labels).toMatchObject({
      grafana_dashboard: '1',
      'app.kubernetes.io/instance': 'nexus',
    });
    expect(map!.metadata).not.toHaveProperty('namespace');
    expect(map!.metadata).not.toHaveProperty('annotations');
    const data = map!.data as Record<string, string>;
    expect(Object.keys(data)).toEqual(['nexus.json']);
    expect(JSON.parse(data['nexus.json']!)).toEqual(readDashboard());
  });

  it('is not rendered with monitoring off, nor with the dashboard off', () => {
    expect(dashboardMap(renderChart({ name: 'default values' }))).toBeUndefined();
    const off = renderChart({
      name: 'dashboard off',
      valueFiles: [GUIDE_VALUES],
      set: ['monitoring.dashboard.enabled=false'],
    });
    expect(dashboardMap(off)).toBeUndefined();
    // The rest of the monitoring stays.
    expect(off.map(o => o.kind)).toContain('ServiceMonitor');
  });

  it("takes the sidecar's label, a namespace and annotations", () => {
    const map = dashboardMap(
      renderChart({
        name: 'dashboard settings',
        values: [
          {
            monitoring: {
              enabled: true,
              dashboard: {
                label: 'example.com/dashboard',
                labelValue: 'nexus',
                namespace: 'monitoring',
                annotations: { grafana_folder: 'Nexus' },
              },
            },
          },
        ],
      }),
    );
    expect(map?.metadata).toMatchObject({
      namespace: 'monitoring',
      annotations: { grafana_folder: 'Nexus' },
      labels: { 'example.com/dashboard': 'nexus' },
    });
    expect(map?.metadata.labels).not.toHaveProperty('grafana_dashboard');
  });

  it('refuses a typo and a label Kubernetes would not accept', () => {
    expect(() =>
      renderChart({ name: 'typo', set: ['monitoring.dashboard.lable=grafana_dashboard'] }),
    ).toThrow(/monitoring\.dashboard: Additional property lable is not allowed/);
    expect(() =>
      renderChart({ name: 'bad label', set: ['monitoring.dashboard.label=-dashboard'] }),
    ).toThrow(/monitoring\.dashboard\.label: Does not match pattern/);
  });
});

describe('the dashboard', () => {
  it('has the rows the operators read, and aggregates the per-process queue gauges with max', () => {
    const dashboard = readDashboard();
    expect(dashboard.panels.filter(p => p.type === 'row').map(p => p.title)).toEqual([
      'HTTP',
      'Queues',
      'Webhooks',
      'SMS and email',
      'Routing and sockets',
      'Athena (AI connector)',
      'Processes, Redis and PostgreSQL',
    ]);
    const exprs = dashboard.panels.flatMap(p => (p.targets ?? []).map(t => t.expr));
    expect(exprs.some(expr => expr.includes('nexus_queue_backlog'))).toBe(true);
    // Every hub process exports the queue gauges for every queue: a sum would count them n times.
    const queueGauges = exprs.filter(expr =>
      /nexus_queue_(jobs|backlog|oldest_waiting)/.test(expr),
    );
    expect(queueGauges.length).toBeGreaterThan(3);
    for (const expr of queueGauges) expect(expr).toMatch(/^max(?: by \([^)]*\))? ?\(nexus_queue_/);
  });

  it('replaces Grafana variables with PromQL stand-ins, leaving label_replace references', () => {
    const variables = new Set(['queue', 'namespace']);
    expect(
      substituteVariables(
        'label_replace(rate(x{queue=~"$queue", ns="${namespace:regex}"}[$__rate_interval]), "a", "$1", "b", "(.*)") * $namespace',
        variables,
      ),
    ).toBe('label_replace(rate(x{queue=~"x", ns="x"}[5m]), "a", "$1", "b", "(.*)") * 1');
  });

  it('reads the metric and label names of an expression', () => {
    expect(
      expressionNames(
        'histogram_quantile(0.95, sum by (le, route) (rate(nexus_request_duration_seconds_bucket{code="5xx", a=~"b}"}[5m] offset 1h))) / on (pod) group_left sum without (x) (nexus_up) and {__name__="nexus_named"}',
      ),
    ).toEqual({
      selectors: [
        { metric: 'nexus_request_duration_seconds_bucket', labels: ['code', 'a'] },
        { metric: 'nexus_up', labels: [] },
        { metric: 'nexus_named', labels: [] },
      ],
      grouping: ['le', 'route', 'pod', 'x'],
    });
  });

  it.runIf(inCi)('promtool is available in CI (.ci/run unpacks it into /opt/promtool)', () => {
    expect(promtool).toBeDefined();
  });

  it.runIf(promtool !== undefined)(
    "passes the check: every query parsed by promtool, every metric the hub's",
    () => {
      const { lines, problems } = checkDashboard();
      expect(problems).toEqual([]);
      expect(lines).toContainEqual(
        expect.stringMatching(/^dashboard queries parsed by promtool check rules: \d+ ok$/),
      );
      expect(lines).toContainEqual(
        expect.stringMatching(/^dashboard metrics of the \d+ queries: all \d+ registered/),
      );
    },
  );

  it.runIf(promtool !== undefined)('fails on a query promtool cannot parse', () => {
    const file = brokenCopy('bad-promql', dashboard => {
      panel(dashboard, 'Request rate by route').targets[0].expr =
        'sum by (route) (rate(nexus_request_total{job=~"$job"}[$__rate_interval])';
    });
    const { problems } = checkDashboard(file);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/panel "Request rate by route" \(A\): .*parse error/);
  });

  it('fails on a metric the hub does not register, a label its metric lacks, a panel without title or datasource', () => {
    const file = brokenCopy('bad-names', dashboard => {
      const backlog = panel(dashboard, 'Backlog').targets[0];
      backlog.expr = backlog.expr.replace('nexus_queue_backlog', 'nexus_queue_depth');
      const states = panel(dashboard, 'Jobs by state').targets[0];
      states.expr = states.expr.replace('state!~', 'status!~');
      const bare = panel(dashboard, 'CPU');
      bare.title = '';
      delete bare.datasource;
    });
    const { problems } = checkDashboard(file, promtool);
    const name = path.relative(path.resolve(DASHBOARD, '../../../..'), file);
    expect(problems).toEqual([
      `dashboard ${name}: panel ${panel(readDashboard(), 'CPU').id}: no title`,
      `dashboard ${name}: panel ${panel(readDashboard(), 'CPU').id}: its datasource is not \${datasource}`,
      `dashboard ${name}: panel "Backlog" (A): nexus_queue_depth is not a metric the hub registers (lib/metrics.ts)`,
      `dashboard ${name}: panel "Jobs by state" (A): nexus_queue_jobs has no label status`,
      ...(promtool
        ? []
        : [
            `dashboard ${name}: promtool not found (PATH, /opt/promtool/promtool), so its queries are not parsed; .ci/run unpacks it from Debian's prometheus package`,
          ]),
    ]);
  });
});

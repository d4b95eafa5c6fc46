import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import {
  renderChart,
  renderedProcess,
  type K8sObject,
  type Render,
} from '../../scripts/chart-check.js';
import { findPromtool } from '../../scripts/rules-check.js';
import { eventually, useHarness } from '../helpers/harness.js';
import { startHubProcess } from '../helpers/processes.js';
import { freePort } from '../helpers/redis-server.js';

/**
 * The workers' autoscalers against a metric the hub really exports: real API and worker
 * processes export nexus_queue_backlog for jobs put in each state; promtool then evaluates the
 * rendered KEDA query, and the query prometheus-adapter builds for the rendered HPA, over those
 * scraped values, labelled as the chart's ServiceMonitor has Prometheus label them.
 */

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const ADAPTER_VALUES = path.join(REPO, 'helm/nexus/prometheus-adapter-values.yaml');
const promtool = findPromtool();
const inCi = process.env.CI === 'true';

const GROUPS: Render = {
  name: 'autoscaled groups',
  values: [
    {
      workers: {
        groups: [
          { name: 'delivery', queues: ['webhooks', 'outbound-sms'] },
          {
            name: 'rest',
            queues: ['inbound', 'receipts', 'outbound-email', 'maintenance'],
            autoscaling: { backlogPerReplica: 50, maxReplicas: 4 },
          },
        ],
      },
      autoscaling: { workers: { enabled: true } },
    },
  ],
};

const find = (objects: K8sObject[], kind: string, name: string) => {
  const object = objects.find(o => o.kind === kind && o.metadata.name === name);
  if (!object) throw new Error(`${kind} ${name} is not rendered`);
  return object;
};

/** `name{labels} value` lines of one metric in a Prometheus text exposition. */
function samples(
  text: string,
  metric: string,
): { labels: Record<string, string>; value: number }[] {
  return text
    .split('\n')
    .filter(line => line.startsWith(`${metric}{`))
    .map(line => {
      const [, labels = '', value = ''] = /^[^{]+\{(.*)\} (\S+)$/.exec(line) ?? [];
      return {
        labels: Object.fromEntries(
          [...labels.matchAll(/(\w+)="([^"]*)"/g)].map(([, key, val]) => [key, val]),
        ),
        value: Number(value),
      };
    });
}

/**
 * Evaluates PromQL expressions with `promtool test rules` over series that hold one value each;
 * returns promtool's output and throws with it when an expression's value differs.
 */
function evaluate(
  series: { series: string; value: number }[],
  checks: { expr: string; value: number }[],
): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'nexus-scaling-'));
  try {
    writeFileSync(path.join(dir, 'rules.yaml'), stringify({ groups: [] }));
    writeFileSync(
      path.join(dir, 'test.yaml'),
      stringify({
        rule_files: ['rules.yaml'],
        evaluation_interval: '15s',
        tests: [
          {
            interval: '15s',
            input_series: series.map(s => ({ series: s.series, values: `${s.value}x8` })),
            promql_expr_test: checks.map(check => ({
              expr: check.expr,
              eval_time: '1m',
              exp_samples: [{ labels: '{}', value: check.value }],
            })),
          },
        ],
      }),
    );
    return execFileSync(promtool!, ['test', 'rules', 'test.yaml'], {
      cwd: dir,
      encoding: 'utf8',
      stdio: 'pipe',
    });
  } catch (error) {
    const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
    throw new Error(`promtool test rules failed:\n${stdout}${stderr}`, { cause: error });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The matchers prometheus-adapter builds for an external metric (pkg/naming/metrics_query.go):
 * the selector's requirements sorted by key (Equals → `=`, In with several values → `=~"a|b"`),
 * then the HPA's namespace.
 */
function adapterMatchers(
  selector: {
    matchLabels?: Record<string, string>;
    matchExpressions?: { key: string; operator: string; values: string[] }[];
  },
  namespace: string,
): string {
  const requirements = [
    ...Object.entries(selector.matchLabels ?? {}).map(([key, value]) => ({
      key,
      text: `${key}=${JSON.stringify(value)}`,
    })),
    ...(selector.matchExpressions ?? []).map(({ key, operator, values }) => {
      if (operator !== 'In') throw new Error(`operator ${operator} is not used by the chart`);
      return {
        key,
        text:
          values.length > 1
            ? `${key}=~${JSON.stringify(values.join('|'))}`
            : `${key}=~${JSON.stringify(values[0])}`,
      };
    }),
  ].sort((a, b) => a.key.localeCompare(b.key));
  return [...requirements.map(r => r.text), `namespace=${JSON.stringify(namespace)}`].join(',');
}

describe('worker autoscaling on nexus_queue_backlog', () => {
  const h = useHarness();

  it('renders a ScaledObject (or HPA) per group that targets its Deployment and covers its queues', () => {
    const keda = renderChart(GROUPS);
    const hpa = renderChart({ ...GROUPS, set: ['autoscaling.workers.keda=false'] });
    for (const group of ['delivery', 'rest']) {
      const name = `nexus-worker-${group}`;
      const deployment = find(keda, 'Deployment', name);
      expect((deployment.spec as { replicas?: number }).replicas).toBeUndefined();
      const queues = renderedProcess(keda, 'Deployment', name).env.NEXUS_WORKER_QUEUES?.split(',');
      const scaled = find(keda, 'ScaledObject', name).spec as {
        scaleTargetRef: { name: string };
        minReplicaCount: number;
        maxReplicaCount: number;
        triggers: { type: string; metadata: { query: string; threshold: string } }[];
      };
      expect(scaled.scaleTargetRef.name).toBe(name);
      const [trigger] = scaled.triggers;
      expect(trigger?.type).toBe('prometheus');
      const matched = /queue=~"([^"]+)"/.exec(trigger?.metadata.query ?? '')?.[1]?.split('|');
      expect(matched).toEqual(queues);
      expect(trigger?.metadata.threshold).toBe(group === 'rest' ? '50' : '500');
      expect(scaled.maxReplicaCount).toBe(group === 'rest' ? 4 : 10);

      const autoscaler = find(hpa, 'HorizontalPodAutoscaler', name).spec as {
        scaleTargetRef: { name: string };
        metrics: {
          external: {
            metric: { name: string; selector: { matchExpressions: { values: string[] }[] } };
          };
        }[];
      };
      expect(autoscaler.scaleTargetRef.name).toBe(name);
      const metric = autoscaler.metrics[0]?.external.metric;
      expect(metric?.name).toBe('nexus_queue_backlog');
      expect(metric?.selector.matchExpressions[0]?.values).toEqual(queues);
      expect(hpa.some(o => o.kind === 'ScaledObject')).toBe(false);
    }
    // A group left out keeps its replica count and gets no autoscaler.
    const mixed = renderChart({
      ...GROUPS,
      set: ['workers.groups[0].autoscaling.enabled=false', 'workers.groups[0].replicas=3'],
    });
    expect(
      (find(mixed, 'Deployment', 'nexus-worker-delivery').spec as { replicas: number }).replicas,
    ).toBe(3);
    expect(mixed.filter(o => o.kind === 'ScaledObject').map(o => o.metadata.name)).toEqual([
      'nexus-worker-rest',
    ]);
  });

  it.runIf(inCi)('has promtool in CI', () => expect(promtool).toBeDefined());

  it.runIf(promtool !== undefined)(
    'reads what the processes export: waiting, prioritized and due delayed jobs, once per queue',
    async () => {
      // Jobs in each state, on queues no process here works (the worker runs maintenance only).
      const webhooks = h().queues.get('webhooks');
      await webhooks.addBulk([1, 2, 3].map(n => ({ name: 'waiting', data: { n } })));
      await webhooks.add('prioritized', { n: 4 }, { priority: 3 });
      await webhooks.add('prioritized', { n: 5 }, { priority: 7 });
      await webhooks.add('due', { n: 6 }, { delay: 1 });
      await webhooks.add('due', { n: 7 }, { delay: 1 });
      await webhooks.add('later', { n: 8 }, { delay: 3_600_000 });
      const sms = h().queues.get('outbound-sms');
      await sms.addBulk([1, 2, 3, 4].map(n => ({ name: 'waiting', data: { n } })));
      const inbound = h().queues.get('inbound');
      await inbound.add('later', { n: 1 }, { delay: 3_600_000 });
      await new Promise(resolve => setTimeout(resolve, 20));

      const [apiMetrics, workerMetrics] = [await freePort(), await freePort()];
      const api = await startHubProcess(h(), 'api', { METRICS_PORT: String(apiMetrics) });
      const worker = await startHubProcess(h(), 'worker', {
        METRICS_PORT: String(workerMetrics),
        NEXUS_WORKER_QUEUES: 'maintenance',
      });
      try {
        const scraped: Record<string, string> = {};
        for (const [pod, port] of [
          ['nexus-api-7d9f', apiMetrics],
          ['nexus-worker-rest-5c4b', workerMetrics],
        ] as const) {
          const text: string = await eventually(async () => {
            const res = await fetch(`http://127.0.0.1:${port}/metrics`).catch(() => undefined);
            return res?.ok ? res.text() : '';
          }, 30_000);
          scraped[pod] = text;
          const backlog = Object.fromEntries(
            samples(text, 'nexus_queue_backlog').map(s => [s.labels.queue, s.value]),
          );
          // 3 waiting + 2 prioritized + 2 due delayed; the job due in an hour is not counted.
          expect(backlog.webhooks).toBe(7);
          expect(backlog['outbound-sms']).toBe(4);
          expect(backlog.inbound).toBe(0);
          const delayed = samples(text, 'nexus_queue_jobs').find(
            s => s.labels.queue === 'webhooks' && s.labels.state === 'delayed',
          );
          expect(delayed?.value).toBe(3);
        }

        // The series as Prometheus stores them through the chart's ServiceMonitor (namespace =
        // the release's, job = the metrics Service, pod), plus other releases' that must not count.
        const keda = renderChart(GROUPS);
        const hpa = renderChart({ ...GROUPS, set: ['autoscaling.workers.keda=false'] });
        const namespace = /namespace="([^"]+)"/.exec(
          (
            find(keda, 'ScaledObject', 'nexus-worker-delivery').spec as {
              triggers: { metadata: { query: string } }[];
            }
          ).triggers[0]!.metadata.query,
        )![1]!;
        const series = Object.entries(scraped).flatMap(([pod, text]) =>
          samples(text, 'nexus_queue_backlog').map(s => ({
            series: `nexus_queue_backlog{namespace="${namespace}",service="nexus-metrics",pod="${pod}",queue="${s.labels.queue}"}`,
            value: s.value,
          })),
        );
        series.push(
          {
            series: `nexus_queue_backlog{namespace="${namespace}",service="other-nexus-metrics",pod="o",queue="webhooks"}`,
            value: 900,
          },
          {
            series:
              'nexus_queue_backlog{namespace="staging",service="nexus-metrics",pod="s",queue="webhooks"}',
            value: 800,
          },
        );

        // The maintenance queue's repeatable jobs come and go as the worker runs them: that group
        // expects what the two scrapes saw, one copy per queue.
        const seen = (queue: string) =>
          Math.max(
            ...Object.values(scraped).map(
              text =>
                samples(text, 'nexus_queue_backlog').find(s => s.labels.queue === queue)?.value ??
                0,
            ),
          );
        const rest = ['inbound', 'receipts', 'outbound-email', 'maintenance'];
        const rule = (
          parse(readFileSync(ADAPTER_VALUES, 'utf8')) as {
            rules: { external: { metricsQuery: string; name: { as: string } }[] };
          }
        ).rules.external[0]!;
        const checks = [];
        for (const [group, expected] of [
          ['delivery', 11],
          ['rest', rest.reduce((sum, queue) => sum + seen(queue), 0)],
        ] as const) {
          const name = `nexus-worker-${group}`;
          const trigger = (
            find(keda, 'ScaledObject', name).spec as { triggers: { metadata: { query: string } }[] }
          ).triggers[0]!;
          checks.push({ expr: trigger.metadata.query, value: expected });
          const metric = (
            find(hpa, 'HorizontalPodAutoscaler', name).spec as {
              metrics: { external: { metric: { name: string; selector: never } } }[];
            }
          ).metrics[0]!.external.metric;
          expect(rule.name.as).toBe(metric.name);
          const adapterQuery = rule.metricsQuery
            .replace('<<.Series>>', metric.name)
            .replace('<<.LabelMatchers>>', adapterMatchers(metric.selector, namespace));
          checks.push({ expr: adapterQuery, value: expected });
        }
        expect(evaluate(series, checks)).toMatch(/SUCCESS/);
        // The evaluation can fail: a query that double counts (a sum over both pods) is refused.
        expect(() =>
          evaluate(series, [
            {
              expr: 'sum(nexus_queue_backlog{namespace="default",service="nexus-metrics",queue="webhooks"})',
              value: 7,
            },
          ]),
        ).toThrow(/FAILED/);
      } finally {
        await Promise.all([api.stop(), worker.stop()]);
      }
    },
    60_000,
  );
});

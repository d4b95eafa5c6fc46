import { sleep } from '../measure.js';
import type { Cluster } from './cluster.js';
import type { Services } from './services.js';
import type { Receiver } from './tenant.js';

export interface FaultContext {
  cluster: Cluster;
  services: Services;
  webhooks: Receiver;
  /** How long the traffic runs. */
  durationMs: number;
  /** How long a fault with a duration lasts (an outage, a cut, a hang). */
  outageMs: number;
  /** How long a frozen worker stays frozen. */
  freezeMs: number;
  /** Notes the fault leaves for the report (what it did, when). */
  note(text: string): void;
}

/** One fault: injected while the traffic runs, healed before it returns. */
export interface Fault {
  readonly name: string;
  readonly description: string;
  inject(ctx: FaultContext): Promise<void>;
}

const at = (ctx: FaultContext, share: number) => sleep(ctx.durationMs * share);

/** At 30 % of the run: `down`, noted as `<what> for <outage> ms`; `up` once the outage is over. */
async function outage(
  ctx: FaultContext,
  what: string,
  down: () => Promise<unknown>,
  up: () => Promise<unknown>,
) {
  await at(ctx, 0.3);
  await down();
  ctx.note(`${what} for ${ctx.outageMs} ms`);
  await sleep(ctx.outageMs);
  await up();
}

async function restartNode(node: Cluster['nodes'][number], ctx: FaultContext, downMs: number) {
  node.kill('SIGKILL');
  ctx.note(`kill -9 ${node.name}`);
  await sleep(downMs);
  await node.start();
}

export const FAULTS: readonly Fault[] = [
  {
    name: 'worker-kill',
    description: 'kill -9 of a worker three times under load (restarted 1 s later each time)',
    async inject(ctx) {
      const start = performance.now();
      for (const [i, share] of [0.2, 0.45, 0.7].entries()) {
        const wait = start + ctx.durationMs * share - performance.now();
        if (wait > 0) await sleep(wait);
        const worker = ctx.cluster.workers[i % ctx.cluster.workers.length];
        if (worker) await restartNode(worker, ctx, 1_000);
      }
    },
  },
  {
    name: 'worker-freeze',
    description: 'a worker frozen (SIGSTOP) mid-batch, resumed (SIGCONT) after the freeze time',
    async inject(ctx) {
      await at(ctx, 0.2);
      const worker = ctx.cluster.workers[0];
      if (!worker) return;
      worker.kill('SIGSTOP');
      ctx.note(`SIGSTOP ${worker.name} for ${ctx.freezeMs} ms`);
      await sleep(ctx.freezeMs);
      worker.kill('SIGCONT');
    },
  },
  {
    name: 'api-kill',
    description: 'kill -9 of an API under load (restarted 1 s later)',
    async inject(ctx) {
      await at(ctx, 0.3);
      const api = ctx.cluster.apis[0];
      if (api) await restartNode(api, ctx, 1_000);
    },
  },
  {
    name: 'redis-restart',
    description: 'Redis killed (no persistence: it comes back empty), up again after the outage',
    async inject(ctx) {
      const { redis } = ctx.services;
      await outage(
        ctx,
        'redis down',
        () => redis.kill(),
        () => redis.start(),
      );
    },
  },
  {
    name: 'redis-flushall',
    description: 'FLUSHALL mid-load: every queue, job and lock in Redis is gone',
    async inject(ctx) {
      await at(ctx, 0.4);
      const keys = await ctx.services.redis.client.dbsize();
      await ctx.services.redis.client.flushall();
      ctx.note(`FLUSHALL of ${keys} keys`);
    },
  },
  {
    name: 'postgres-restart',
    description: 'PostgreSQL stopped (fast) and started again after the outage',
    async inject(ctx) {
      const { postgres } = ctx.services;
      await outage(
        ctx,
        'postgres down',
        () => postgres.stop('fast'),
        () => postgres.start(),
      );
    },
  },
  {
    name: 'postgres-cut',
    description: 'network cut between the hub and PostgreSQL (TCP proxy: resets, refuses)',
    async inject(ctx) {
      const proxy = ctx.services.postgresProxy;
      await outage(
        ctx,
        'postgres cut',
        () => proxy.cut(),
        () => proxy.restore(),
      );
    },
  },
  {
    name: 'redis-cut',
    description: 'network cut between the hub and Redis (TCP proxy: resets, refuses)',
    async inject(ctx) {
      const proxy = ctx.services.redisProxy;
      await outage(
        ctx,
        'redis cut',
        () => proxy.cut(),
        () => proxy.restore(),
      );
    },
  },
  {
    name: 'webhook-hang',
    description: 'the webhook receiver takes requests and never answers, for the outage',
    async inject(ctx) {
      await at(ctx, 0.2);
      ctx.webhooks.hang(true);
      ctx.note(`receiver hangs for ${ctx.outageMs} ms`);
      await sleep(ctx.outageMs);
      ctx.webhooks.hang(false);
      ctx.note(`${ctx.webhooks.hung} requests left hanging`);
    },
  },
];

export function faultsNamed(names: readonly string[] | undefined): Fault[] {
  if (!names) return [...FAULTS];
  return names.map(name => {
    const fault = FAULTS.find(f => f.name === name);
    if (!fault) {
      throw new Error(`no scenario "${name}": ${FAULTS.map(f => f.name).join(', ')}`);
    }
    return fault;
  });
}

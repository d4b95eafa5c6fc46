import pg from 'pg';
import { sleep, waitFor } from '../measure.js';
import { account, diagnose, settled, type ChannelCount } from './accounting.js';
import { startCluster } from './cluster.js';
import type { Fault } from './faults.js';
import { startServices } from './services.js';
import {
  provisionTenant,
  socketsConnected,
  startSmsGateway,
  startWebhookReceiver,
} from './tenant.js';
import { driveTraffic, emptyLog, seeded } from './traffic.js';

export interface ScenarioOptions {
  apis: number;
  workers: number;
  compiled: boolean;
  durationMs: number;
  rate: number;
  concurrency: number;
  sessions: number;
  smsShare: number;
  outageMs: number;
  freezeMs: number;
  /** How long the counts may take to settle once the fault is healed. */
  settleMs: number;
  seed: number;
  /** Progress lines (stderr by default). */
  progress?: (line: string) => void;
}

export interface ScenarioResult {
  scenario: string;
  counts: ChannelCount[];
  /** Answers the drivers got, by kind (`2xx`, `503`, `network`, ...). */
  answers: Record<string, number>;
  refused: number;
  /** Exits of hub processes nobody asked for. */
  unexpectedExits: number;
  /** From the end of the traffic to settled counts (or the timeout). */
  settleMs: number;
  notes: string[];
  /** Set when the scenario could not run to its count (a start-up failure, a crash). */
  error?: string;
}

/** A scenario passes when nothing is lost, every duplicate kept its id, and no process crashed. */
export const passed = (r: ScenarioResult) =>
  !r.error &&
  r.unexpectedExits === 0 &&
  r.counts.every(c => c.lost === 0 && c.persisted === c.accepted && c.unstable === 0);

/**
 * One scenario on a fresh deployment: private PostgreSQL and Redis, the hub's processes, the
 * tenant, traffic for the duration with the fault injected and healed meanwhile, then counts
 * polled until every accepted item is persisted and delivered or the settle time runs out.
 */
export async function runScenario(fault: Fault, options: ScenarioOptions): Promise<ScenarioResult> {
  const progress = options.progress ?? ((line: string) => process.stderr.write(`${line}\n`));
  const notes: string[] = [];
  const log = emptyLog();
  const services = await startServices();
  const stops: (() => Promise<void> | void)[] = [() => services.stop()];
  const result = (counts: ChannelCount[], settleMs: number, unexpectedExits: number) => ({
    scenario: fault.name,
    counts,
    answers: Object.fromEntries(log.answers),
    refused: log.refused,
    unexpectedExits,
    settleMs,
    notes,
  });
  try {
    const cluster = await startCluster(services, {
      apis: options.apis,
      workers: options.workers,
      compiled: options.compiled,
    });
    stops.unshift(() => cluster.stop());
    const webhooks = await startWebhookReceiver();
    const gateway = await startSmsGateway();
    stops.unshift(
      () => webhooks.close(),
      () => gateway.close(),
    );
    const apiUrls = () => cluster.apis.map(a => a.url as string);
    const tenant = await provisionTenant({
      apiUrls: apiUrls(),
      sessions: options.sessions,
      agents: Math.max(1, options.apis),
      webhookUrl: webhooks.url,
      gatewayUrl: gateway.url,
    });
    stops.unshift(() => tenant.close());
    const db = new pg.Pool({ connectionString: services.directDatabaseUrl, max: 2 });
    db.on('error', () => undefined);
    stops.unshift(() => db.end());
    await waitFor(
      async () => {
        const { rows } = await db.query<{ n: string }>(
          'SELECT count(*) AS n FROM interactions WHERE started_event_at IS NOT NULL',
        );
        return Number(rows[0]?.n) === options.sessions;
      },
      60_000,
      'the sessions to start',
    );
    progress(`  ${fault.name}: traffic for ${options.durationMs / 1000} s, ${fault.description}`);
    await Promise.all([
      driveTraffic(
        {
          apiUrls,
          tenant,
          durationMs: options.durationMs,
          rate: options.rate,
          concurrency: options.concurrency,
          smsShare: options.smsShare,
          numbers: 20,
          random: seeded(options.seed),
          retries: 3,
        },
        log,
      ),
      fault.inject({
        cluster,
        services,
        webhooks,
        durationMs: options.durationMs,
        outageMs: options.outageMs,
        freezeMs: options.freezeMs,
        note: text => notes.push(text),
      }),
    ]);
    const trafficEnd = performance.now();
    await socketsConnected(tenant, options.settleMs).catch(() =>
      notes.push('a socket never reconnected'),
    );
    let counts = await account(db, log, tenant, webhooks, gateway);
    while (!settled(counts) && performance.now() - trafficEnd < options.settleMs) {
      await sleep(500);
      counts = await account(db, log, tenant, webhooks, gateway).catch(() => counts);
    }
    const settleMs = performance.now() - trafficEnd;
    // Late duplicates (a frozen worker's batch, a retry in flight) get a moment to show up.
    await sleep(1_500);
    counts = await account(db, log, tenant, webhooks, gateway);
    const unexpectedExits = cluster.nodes.reduce((n, node) => n + node.unexpectedExits, 0);
    for (const node of cluster.nodes) {
      if (node.unexpectedExits > 0) notes.push(`${node.name} crashed:\n${node.tail()}`);
    }
    for (const c of counts) {
      if (c.lost > 0) notes.push(`${c.channel} lost, e.g. ${c.lostSample.join(', ')}`);
    }
    if (!settled(counts)) {
      const sms = [...log.sms].filter(id => !gateway.arrivals.byKey.has(id));
      notes.push(...(await diagnose(db, sms).catch((error: unknown) => [String(error)])));
      for (const node of cluster.nodes) notes.push(`${node.name}:\n${node.tail()}`);
    }
    return result(counts, settleMs, unexpectedExits);
  } catch (error) {
    return { ...result([], 0, 0), error: error instanceof Error ? error.message : String(error) };
  } finally {
    for (const stop of stops) {
      await Promise.resolve()
        .then(stop)
        .catch(() => undefined);
    }
  }
}

import type pg from 'pg';
import type { TrafficLog } from './traffic.js';
import { Arrivals, TENANT, type Receiver, type Tenant } from './tenant.js';

/** One channel's count after a scenario (docs/reliability.md, "Chaos suite", defines them). */
export interface ChannelCount {
  channel: 'chat' | 'sms' | 'webhooks';
  /** Chat and SMS: answered 2xx. Webhooks: events of the subscribed type committed. */
  accepted: number;
  /** Accepted with their row committed (chat: with a seq). */
  persisted: number;
  /** Accepted that reached their destination at least once. */
  delivered: number;
  /** accepted − delivered. */
  lost: number;
  /** Arrivals beyond the first, over every key. */
  duplicates: number;
  /** Keys that arrived more than once with different stamps (must be 0). */
  unstable: number;
  /** A few ids of lost work, for a look in the database. */
  lostSample: string[];
}

export function countChannel(
  channel: ChannelCount['channel'],
  accepted: ReadonlySet<string>,
  persisted: ReadonlySet<string>,
  arrivals: Arrivals,
): ChannelCount {
  let delivered = 0;
  let duplicates = 0;
  let unstable = 0;
  const lostSample: string[] = [];
  for (const id of accepted) {
    if (arrivals.byKey.has(id)) delivered++;
    else if (lostSample.length < 5) lostSample.push(id);
  }
  for (const stamps of arrivals.byKey.values()) {
    duplicates += stamps.length - 1;
    if (new Set(stamps).size > 1) unstable++;
  }
  return {
    channel,
    accepted: accepted.size,
    persisted: [...accepted].filter(id => persisted.has(id)).length,
    delivered,
    lost: accepted.size - delivered,
    duplicates,
    unstable,
    lostSample,
  };
}

/** Every chat, SMS and webhook count, from the drivers' logs, the observers and the database. */
export async function account(
  db: pg.Pool,
  log: TrafficLog,
  tenant: Tenant,
  webhooks: Receiver,
  gateway: Receiver,
): Promise<ChannelCount[]> {
  const ids = [...log.chat, ...log.sms];
  const { rows } = await db.query<{ id: string }>(
    'SELECT id FROM messages WHERE id = ANY($1::uuid[]) AND seq IS NOT NULL',
    [ids],
  );
  const persisted = new Set(rows.map(r => r.id));
  const socket = new Arrivals();
  for (const agent of tenant.agents) {
    for (const [key, stamps] of agent.messages.byKey) {
      for (const stamp of stamps) socket.add({ key, stamp });
    }
  }
  const events = await db.query<{ id: string }>(
    "SELECT id FROM events WHERE tenant_id = $1 AND type = 'message.created'",
    [TENANT],
  );
  const eventIds = new Set(events.rows.map(r => r.id));
  return [
    countChannel('chat', log.chat, persisted, socket),
    countChannel('sms', log.sms, persisted, gateway.arrivals),
    countChannel('webhooks', eventIds, eventIds, webhooks.arrivals),
  ];
}

/** Whether every channel settled: nothing accepted is missing anywhere. */
export const settled = (counts: readonly ChannelCount[]) =>
  counts.every(c => c.lost === 0 && c.persisted === c.accepted);

/**
 * Where unsettled work stands in the database: work rows by queue and state, webhook deliveries
 * by state, deliveries not yet dispatched, undelivered records and the SMS lost's statuses.
 */
export async function diagnose(db: pg.Pool, lostSms: readonly string[]): Promise<string[]> {
  const lines: string[] = [];
  const query = async (title: string, text: string, values: unknown[] = []) => {
    const { rows } = await db.query<Record<string, unknown>>(text, values);
    lines.push(`${title}: ${rows.map(r => Object.values(r).join(' ')).join(', ') || 'none'}`);
  };
  await query('work', 'SELECT queue, state, count(*) FROM work GROUP BY 1, 2 ORDER BY 1, 2');
  await query(
    'webhook deliveries',
    'SELECT state, count(*) FROM webhook_deliveries GROUP BY 1 ORDER BY 1',
  );
  await query('undispatched', 'SELECT count(*) FROM webhook_dispatch_queue');
  await query(
    'undelivered',
    'SELECT queue, left(reason, 120), count(*) FROM undelivered GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 5',
  );
  await query(
    'lost SMS',
    'SELECT delivery_status, count(*) FROM messages WHERE id = ANY($1::uuid[]) GROUP BY 1',
    [lostSms],
  );
  return lines;
}

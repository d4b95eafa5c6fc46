import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { DEFAULT_BOT_NAME, type HandoffReason } from '../../domain/bots.js';
import { aiHandoffsTotal } from '../../lib/metrics.js';
import { appendEvents, type InteractionEvent } from '../conversation.js';
import { botParticipant, conversationState, type ConversationState } from './bots.js';
import { recordDecision } from './decisions.js';
import { lastAgentOf } from './queueing.js';

/**
 * A bot's conversation goes to the agents of its queue: the AI connector asks
 * (`POST …/bot/handoff`), or the queue's deadline passes (the maintenance queue). One code path
 * for both. How a conversation reaches the bot: db/routing/bots.ts.
 */

export type HandoffOutcome =
  | { handedOff: true; tenantId: string; queue: string | null; events: InteractionEvent[] }
  | { handedOff: false; state: ConversationState; events: InteractionEvent[] };

/**
 * Ends the bot's hold on the interaction, under its row lock: the bot leaves
 * (`participant.left`), `interaction.handoff` `{reason, detail}` is appended, and the
 * conversation waits in its queue from now, for the contact's last agent first as any returning
 * customer (the queue's `lastAgentWaitMs`); a queue deleted meanwhile leaves it unrouted. The
 * caller publishes the events and routes the queue after the commit. An interaction the bot no
 * longer holds (handed off, done) is left as it is: `handedOff: false` with where it is.
 * Undefined when there is no such interaction (of the tenant, when given).
 */
export async function handOffBot(
  tx: CommonQueryMethods,
  interaction: { id: string; tenantId?: string | undefined },
  handoff: { reason: HandoffReason; detail: string | null },
): Promise<HandoffOutcome | undefined> {
  const row = await tx.maybeOne(
    sql.type(
      z.object({
        tenant_id: z.string(),
        state: z.string(),
        routing_state: z.string().nullable(),
        queue_name: z.string().nullable(),
        queue_exists: z.boolean(),
        bot_name: z.string().nullable(),
        last_agent_wait_ms: z.number().nullable(),
      }),
    )`
      SELECT i.tenant_id, i.state, i.routing_state, i.queue_name, q.name IS NOT NULL AS queue_exists,
             q.bot_name, q.last_agent_wait_ms
      FROM interactions i
      LEFT JOIN routing_queues q ON q.tenant_id = i.tenant_id AND q.name = i.queue_name
      WHERE i.id = ${interaction.id}
        ${interaction.tenantId === undefined ? sql.fragment`` : sql.fragment`AND i.tenant_id = ${interaction.tenantId}`}
      FOR NO KEY UPDATE OF i`,
  );
  if (!row) return undefined;
  if (row.state !== 'open' || row.routing_state !== 'bot') {
    return { handedOff: false, state: conversationState(row.state, row.routing_state), events: [] };
  }
  const queue = row.queue_exists ? row.queue_name : null;
  const lastAgent = queue ? await lastAgentOf(tx, interaction.id) : null;
  await tx.query(sql.unsafe`
    UPDATE interactions SET routing_state = ${queue ? 'queued' : null},
           queued_at = ${queue ? sql.fragment`now()` : null}, preferred_agent_id = ${lastAgent},
           preferred_until = CASE WHEN ${lastAgent}::uuid IS NULL THEN NULL
             ELSE now() + make_interval(secs => ${(row.last_agent_wait_ms ?? 0) / 1000}) END,
           updated_at = now()
    WHERE id = ${interaction.id}`);
  await recordDecision(tx, {
    tenantId: row.tenant_id,
    interactionId: interaction.id,
    queue: row.queue_name,
    agentId: lastAgent,
    decision: 'handoff',
    reason:
      handoff.reason === 'deadline'
        ? "the queue's bot deadline passed"
        : `the bot handed off (${handoff.reason})`,
    waitedMs: null,
  });
  const events = await appendEvents(tx, interaction.id, [
    {
      type: 'participant.left',
      payload: { participant: botParticipant(row.bot_name ?? DEFAULT_BOT_NAME) },
    },
    {
      type: 'interaction.handoff',
      payload: { reason: handoff.reason, detail: handoff.detail },
    },
  ]);
  aiHandoffsTotal.inc({ reason: handoff.reason });
  return { handedOff: true, tenantId: row.tenant_id, queue, events };
}

/** Interactions the bot still holds past their deadline, the earliest first (the sweep's). */
export async function overdueBots(db: CommonQueryMethods, limit = 500): Promise<readonly string[]> {
  return db.anyFirst(sql.type(z.object({ id: z.string() }))`
    SELECT id FROM interactions
    WHERE routing_state = 'bot' AND state = 'open' AND bot_handoff_at <= now()
    ORDER BY bot_handoff_at LIMIT ${limit}`);
}

import { randomUUID } from 'node:crypto';
import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { NUMBERING_LOCK } from '../conversation.js';
import type { ChannelRow } from './channels.js';

/**
 * Conversations threaded on a customer's address (an SMS number, an email address): at most one
 * open interaction per tenant, channel and address (a partial unique index), which every message
 * to or from that address joins until it is done.
 */

export interface ThreadKind {
  /** The interaction's media and subtype (the channel's, or the kind's default). */
  media: string;
  subtype: string;
}

const threadId = z.object({ id: z.string(), queue_name: z.string().nullable() });

/** The open thread with `address` on the channel, locked for numbering. */
async function lockOpenThread(
  tx: CommonQueryMethods,
  tenantId: string,
  channel: string,
  address: string,
): Promise<z.infer<typeof threadId>> {
  return tx.one(sql.type(threadId)`
    SELECT id, queue_name FROM interactions
    WHERE tenant_id = ${tenantId} AND channel = ${channel}
      AND customer_address = ${address} AND state = 'open'
    ${NUMBERING_LOCK}`);
}

/**
 * The customer's open conversation on the channel, created when there is none, locked for the
 * caller (an inbound message joins it).
 */
export async function openCustomerThread(
  tx: CommonQueryMethods,
  thread: { tenantId: string; channel: ChannelRow; address: string; kind: ThreadKind },
): Promise<string> {
  const { channel, kind } = thread;
  await tx.query(sql.unsafe`
    INSERT INTO interactions (id, tenant_id, media, subtype, endpoint, channel, customer_address)
    VALUES (${randomUUID()}, ${thread.tenantId}, ${kind.media}, ${kind.subtype},
            ${channel.endpoint}, ${channel.name}, ${thread.address})
    ON CONFLICT (tenant_id, channel, customer_address) WHERE state = 'open' AND channel IS NOT NULL
    DO NOTHING`);
  return (await lockOpenThread(tx, thread.tenantId, channel.name, thread.address)).id;
}

/**
 * The conversation an agent starts with `address` on the channel: a new interaction, started
 * and assigned to the agent (its queue the one serving the channel's endpoint), or the
 * customer's open one on the channel, locked for the caller.
 */
export async function openAgentThread(
  tx: CommonQueryMethods,
  open: {
    tenantId: string;
    channel: ChannelRow;
    address: string;
    contactId: string;
    agentId: string;
    kind: ThreadKind;
  },
): Promise<{ id: string; created: boolean; queue: string | null }> {
  const { channel, kind } = open;
  const created = await tx.maybeOne(sql.type(threadId)`
    INSERT INTO interactions (id, tenant_id, media, subtype, endpoint, channel, customer_address,
                              contact_id, started_event_at, routing_state, assigned_agent_id,
                              queue_name)
    VALUES (${randomUUID()}, ${open.tenantId}, ${kind.media}, ${kind.subtype},
            ${channel.endpoint}, ${channel.name}, ${open.address}, ${open.contactId}, now(),
            'assigned', ${open.agentId},
            (SELECT queue_name FROM routing_queue_endpoints
             WHERE tenant_id = ${open.tenantId} AND endpoint = ${channel.endpoint}))
    ON CONFLICT (tenant_id, channel, customer_address) WHERE state = 'open' AND channel IS NOT NULL
    DO NOTHING
    RETURNING id, queue_name`);
  if (created) return { id: created.id, created: true, queue: created.queue_name };
  const existing = await lockOpenThread(tx, open.tenantId, channel.name, open.address);
  return { id: existing.id, created: false, queue: existing.queue_name };
}

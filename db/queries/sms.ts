import { randomUUID } from 'node:crypto';
import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import type { ChannelRow } from './channels.js';

export interface InboundSms {
  tenantId: string;
  channel: ChannelRow;
  /** The customer's number, normalised. */
  from: string;
  text: string;
  /** The aggregator's message id: a retried MO is stored once. */
  externalId: string;
}

export interface AcceptedSms {
  interactionId: string;
  messageId: string;
  /** False when the same MO (external id) was stored before: a retry. */
  stored: boolean;
}

/**
 * Stores an inbound SMS, Postgres-first, in the caller's transaction: the customer's open
 * interaction on the channel (created when there is none, so texts thread into one
 * conversation) and the message (once per external id). The caller records the `inbound` work
 * in the same transaction; the inbound processor starts, numbers and routes it as web chat.
 */
export async function acceptInboundSms(
  tx: CommonQueryMethods,
  sms: InboundSms,
): Promise<AcceptedSms> {
  await tx.query(sql.unsafe`
    INSERT INTO interactions (id, tenant_id, media, subtype, endpoint, channel, customer_address)
    VALUES (${randomUUID()}, ${sms.tenantId}, ${sms.channel.media ?? 'chat'},
            ${sms.channel.interaction_subtype ?? 'SMS'}, ${sms.channel.endpoint},
            ${sms.channel.name}, ${sms.from})
    ON CONFLICT (tenant_id, channel, customer_address) WHERE state = 'open' AND channel IS NOT NULL
    DO NOTHING`);
  const interactionId = await tx.oneFirst(sql.type(z.object({ id: z.string() }))`
    SELECT id FROM interactions
    WHERE tenant_id = ${sms.tenantId} AND channel = ${sms.channel.name}
      AND customer_address = ${sms.from} AND state = 'open'
    FOR UPDATE`);
  const inserted = await tx.maybeOneFirst(sql.type(z.object({ id: z.string() }))`
    INSERT INTO messages (id, tenant_id, interaction_id, direction, sender_type, sender_id, text,
                          client_message_id)
    VALUES (${randomUUID()}, ${sms.tenantId}, ${interactionId}, 'inbound', 'customer', ${sms.from},
            ${sms.text}, ${sms.externalId})
    ON CONFLICT (interaction_id, sender_id, client_message_id) DO NOTHING
    RETURNING id`);
  if (!inserted) {
    const existing = await tx.oneFirst(sql.type(z.object({ id: z.string() }))`
      SELECT id FROM messages
      WHERE interaction_id = ${interactionId} AND sender_id = ${sms.from}
        AND client_message_id = ${sms.externalId}`);
    return { interactionId, messageId: existing, stored: false };
  }
  return { interactionId, messageId: inserted, stored: true };
}

/** Records an inbound message the hub refused (it is not processed). */
export async function recordSmsRejection(
  db: CommonQueryMethods,
  rejection: {
    tenantId: string;
    reason: string;
    from: string | null;
    to: string | null;
    externalId: string | null;
  },
): Promise<void> {
  await db.query(sql.unsafe`
    INSERT INTO sms_rejections (tenant_id, reason, from_address, to_address, external_id)
    VALUES (${rejection.tenantId}, ${rejection.reason}, ${rejection.from}, ${rejection.to},
            ${rejection.externalId})`);
}

/** The customer address of a threaded interaction (SMS), if it has one. */
export async function findCustomerAddress(
  db: CommonQueryMethods,
  interactionId: string,
): Promise<{ channel: string; address: string } | undefined> {
  const row = await db.maybeOne(
    sql.type(
      z.object({ channel: z.string().nullable(), customer_address: z.string().nullable() }),
    )`SELECT channel, customer_address FROM interactions WHERE id = ${interactionId}`,
  );
  if (!row?.channel || !row.customer_address) return undefined;
  return { channel: row.channel, address: row.customer_address };
}

import { randomUUID } from 'node:crypto';
import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import type { ChannelRow } from './channels.js';
import { emailColumns, emailRow, type EmailRow } from './email.js';

/**
 * Email threads: which conversation a mail belongs to. A customer's mail names the mails it
 * answers (`In-Reply-To`, `References`); the newest stored mail among them gives its
 * conversation (or, for a campaign mail nobody answered yet, the record whose conversation it
 * starts). Without one, the customer's open conversation on the channel takes it, as for SMS.
 */

/** The newest stored mail of the tenant whose Message-ID is one of `ids`. */
export async function findThreadMail(
  tx: CommonQueryMethods,
  tenantId: string,
  ids: readonly string[],
): Promise<EmailRow | undefined> {
  if (ids.length === 0) return undefined;
  const row = await tx.maybeOne(sql.type(emailRow)`
    SELECT ${emailColumns} FROM email_messages
    WHERE tenant_id = ${tenantId} AND message_id = ANY(${sql.array([...ids], 'text')})
    ORDER BY created_at DESC LIMIT 1`);
  return row ?? undefined;
}

/** Whether the interaction is open (a closed conversation is not written to again). */
export async function isOpenInteraction(
  tx: CommonQueryMethods,
  interactionId: string,
): Promise<boolean> {
  const state = await tx.maybeOneFirst(sql.type(z.object({ state: z.string() }))`
    SELECT state FROM interactions WHERE id = ${interactionId} FOR NO KEY UPDATE`);
  return state === 'open';
}

/**
 * The customer's open email conversation on the channel, created when there is none (one open
 * conversation per customer address and channel, as for SMS), locked for the caller.
 */
export async function openEmailInteraction(
  tx: CommonQueryMethods,
  thread: { tenantId: string; channel: ChannelRow; customer: string },
): Promise<string> {
  const { channel } = thread;
  await tx.query(sql.unsafe`
    INSERT INTO interactions (id, tenant_id, media, subtype, endpoint, channel, customer_address)
    VALUES (${randomUUID()}, ${thread.tenantId}, ${channel.media ?? 'email'},
            ${channel.interaction_subtype ?? 'InboundNew'}, ${channel.endpoint}, ${channel.name},
            ${thread.customer})
    ON CONFLICT (tenant_id, channel, customer_address) WHERE state = 'open' AND channel IS NOT NULL
    DO NOTHING`);
  return tx.oneFirst(sql.type(z.object({ id: z.string() }))`
    SELECT id FROM interactions
    WHERE tenant_id = ${thread.tenantId} AND channel = ${channel.name}
      AND customer_address = ${thread.customer} AND state = 'open'
    FOR NO KEY UPDATE`);
}

/** A campaign mail answered for the first time joins the conversation its answer started. */
export async function linkMailToInteraction(
  tx: CommonQueryMethods,
  mailId: string,
  interactionId: string,
): Promise<void> {
  await tx.query(sql.unsafe`
    UPDATE email_messages SET interaction_id = ${interactionId}
    WHERE id = ${mailId} AND interaction_id IS NULL`);
}

/** The mails of a conversation, oldest first (an agent's reply threads on the last one). */
export async function mailsOfInteraction(
  tx: CommonQueryMethods,
  interactionId: string,
): Promise<readonly EmailRow[]> {
  return tx.any(sql.type(emailRow)`
    SELECT ${emailColumns} FROM email_messages
    WHERE interaction_id = ${interactionId} ORDER BY created_at, id`);
}

/** Stores an inbound attachment's bytes (the `media` table SMS media use); answers its id. */
export async function insertEmailMedia(
  tx: CommonQueryMethods,
  media: {
    tenantId: string;
    domain: string;
    filename: string;
    contentType: string;
    content: Buffer;
  },
): Promise<string> {
  const id = randomUUID();
  await tx.query(sql.unsafe`
    INSERT INTO media (id, tenant_id, channel_id, filename, mimetype, length, content)
    VALUES (${id}, ${media.tenantId}, ${media.domain}, ${media.filename}, ${media.contentType},
            ${media.content.length}, ${sql.binary(media.content)})`);
  return id;
}

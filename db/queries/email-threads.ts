import { randomUUID } from 'node:crypto';
import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
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
 * The message an agent sent under `clientMessageId` in a conversation with `address` on the
 * email channel (open or done): a retried start answers it again.
 */
export async function findAgentEmailByClientId(
  db: CommonQueryMethods,
  find: {
    tenantId: string;
    channel: string;
    address: string;
    agentId: string;
    clientMessageId: string;
  },
): Promise<{ messageId: string; interactionId: string } | undefined> {
  const row = await db.maybeOne(sql.type(
    z.object({ message_id: z.string(), interaction_id: z.string() }),
  )`
    SELECT m.id AS message_id, m.interaction_id
    FROM interactions i
    JOIN messages m ON m.interaction_id = i.id AND m.sender_id = ${find.agentId}
                   AND m.client_message_id = ${find.clientMessageId}
    WHERE i.tenant_id = ${find.tenantId} AND i.channel = ${find.channel}
      AND i.customer_address = ${find.address} AND m.sender_type = 'agent'
    ORDER BY m.received DESC LIMIT 1`);
  return row ? { messageId: row.message_id, interactionId: row.interaction_id } : undefined;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * An attachment's bytes, only when `mediaId` is an attachment of a mail of the tenant's
 * interaction (a media id of another conversation, or an SMS upload, is not found).
 */
export async function findInteractionAttachment(
  db: CommonQueryMethods,
  tenantId: string,
  interactionId: string,
  mediaId: string,
): Promise<{ filename: string; mimetype: string; content: Buffer } | undefined> {
  if (!UUID.test(mediaId)) return undefined;
  const row = await db.maybeOne(sql.type(
    z.object({ filename: z.string(), mimetype: z.string(), content: z.instanceof(Buffer) }),
  )`
    SELECT m.filename, m.mimetype, m.content FROM media m
    WHERE m.id = ${mediaId} AND m.tenant_id = ${tenantId}
      AND EXISTS (
        SELECT 1 FROM email_messages e
        WHERE e.interaction_id = ${interactionId} AND e.tenant_id = ${tenantId}
          AND e.attachments @> ${sql.jsonb([{ mediaId: mediaId.toLowerCase() }])})`);
  return row ?? undefined;
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

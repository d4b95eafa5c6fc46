/**
 * The intake of inbound email, whichever way it arrives (the Async gateway's inbound API, the
 * hub's SMTP listener, SparkPost relay webhooks): one customer mail becomes a message of an email
 * conversation, stored Postgres-first with its `inbound` work, which starts and routes it like a
 * chat. The conversation is found by the mail's threading headers (a reply to a campaign mail
 * joins that record's conversation, a reply to an agent's answer joins the conversation the
 * answer belongs to) when its sender took part in the mail it answers; else it is the sender's
 * open conversation on the domain's channel. HTML
 * is sanitised before it is stored (agents only ever see the sanitised form); attachments are
 * kept within a size cap and a content-type allow-list, and the transcript names those that
 * were not. A mail seen before (same Message-ID) is answered as a duplicate.
 */
import { randomUUID } from 'node:crypto';
import type { DatabasePool } from 'slonik';
import { insertMessage } from '../../db/conversation.js';
import { findEmailChannel, type ChannelRow } from '../../db/queries/channels.js';
import { openCustomerThread } from '../../db/queries/customer-threads.js';
import {
  findThreadMail,
  insertEmailMedia,
  isOpenInteraction,
  linkMailToInteraction,
} from '../../db/queries/email-threads.js';
import { insertEmails, type StoredAttachment } from '../../db/queries/email.js';
import { domainOf } from '../../domain/email-address.js';
import {
  attachmentAllowed,
  sanitizeEmailHtml,
  transcriptText,
} from '../../domain/email-content.js';
import { AppError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { inboundQueue } from '../../queues/inbound.js';
import { dispatchWork, recordWork, type EnqueueContext } from '../../queues/work.js';

export interface InboundEmailDeps {
  db: DatabasePool;
  enqueue: EnqueueContext;
  log: Logger;
  /** NEXUS_EMAIL_ATTACHMENT_MAX_BYTES. */
  attachmentMaxBytes: number;
}

export interface MailAddress {
  readonly address: string;
  readonly name?: string | undefined;
}

/** One customer mail, as its way in delivered it (fields already checked for header safety). */
export interface InboundEmail {
  readonly from: MailAddress;
  readonly to: readonly MailAddress[];
  readonly cc: readonly MailAddress[];
  /** Where the customer wants answers (their Reply-To), when it is not their From. */
  readonly replyTo?: MailAddress | undefined;
  readonly subject: string;
  readonly text?: string | undefined;
  readonly html?: string | undefined;
  /** `<id@host>`; a mail without one gets one of the hub's (and cannot be recognised again). */
  readonly messageId?: string | undefined;
  readonly inReplyTo?: string | undefined;
  readonly references: readonly string[];
  readonly attachments: readonly {
    readonly filename: string;
    readonly contentType: string;
    readonly content: Buffer;
  }[];
}

export interface InboundEmailResult {
  readonly mailId: string;
  readonly messageId: string;
  readonly interactionId: string;
  readonly duplicate: boolean;
}

/** At most this many attachments of one mail are kept. */
const MAX_ATTACHMENTS = 20;

/**
 * The tenant's email channel the mail was sent to: the first recipient (To, then Cc) at one of
 * its email domains.
 */
export async function channelOfRecipients(
  db: DatabasePool,
  tenant: string,
  recipients: readonly MailAddress[],
): Promise<ChannelRow | undefined> {
  for (const recipient of recipients) {
    const channel = await findEmailChannel(db, tenant, domainOf(recipient.address));
    if (channel) return channel;
  }
  return undefined;
}

/** Stores one inbound mail of `tenant` (see the file comment). */
export async function receiveInboundEmail(
  deps: InboundEmailDeps,
  tenant: string,
  mail: InboundEmail,
  source: string,
): Promise<InboundEmailResult> {
  const { db } = deps;
  const channel = await channelOfRecipients(db, tenant, [...mail.to, ...mail.cc]);
  if (!channel) {
    throw new AppError(
      'NEXUS_ERR_EMAIL_UNKNOWN_DOMAIN',
      `${source}.to: no recipient is at a domain of the tenant's email channels`,
      `${source}.to`,
    );
  }
  const mailId = randomUUID();
  const messageId = mail.messageId ?? `<${mailId}@${channel.channel_id.toLowerCase()}>`;
  // PostgreSQL text holds no NUL: a body's NULs are dropped.
  const html = mail.html ? sanitizeEmailHtml(mail.html.replaceAll('\0', '')) : undefined;
  const plain = mail.text?.replaceAll('\0', '');
  const kept = mail.attachments.slice(0, MAX_ATTACHMENTS);
  const notes: string[] = [];
  for (const dropped of mail.attachments.slice(MAX_ATTACHMENTS)) {
    notes.push(`${dropped.filename}: not kept (more than ${MAX_ATTACHMENTS} attachments)`);
  }
  const allowed = kept.filter(entry => {
    if (!attachmentAllowed(entry.contentType)) {
      notes.push(`${entry.filename}: not kept (${entry.contentType} is not an allowed type)`);
      return false;
    }
    if (entry.content.length > deps.attachmentMaxBytes) {
      notes.push(`${entry.filename}: not kept (larger than ${deps.attachmentMaxBytes} bytes)`);
      return false;
    }
    return true;
  });
  const text = [
    transcriptText(plain, html),
    ...(notes.length ? ['', ...notes.map(note => `[attachment ${note}]`)] : []),
  ].join('\n');
  const ids = [...(mail.inReplyTo ? [mail.inReplyTo] : []), ...[...mail.references].reverse()];

  const outcome = await db
    .transaction(async tx => {
      // The mail a reply names, when its sender took part in it (its sender or a recipient): a
      // stranger's mail naming someone else's thread goes to their own conversation instead.
      const named = await findThreadMail(tx, tenant, ids);
      const sender = mail.from.address.toLowerCase();
      const took =
        named &&
        [
          named.from_address,
          named.reply_to ?? '',
          ...named.to_addresses.map(entry => entry.address),
          ...named.cc_addresses.map(entry => entry.address),
        ].some(address => address.toLowerCase() === sender);
      const thread = took ? named : undefined;
      let interactionId: string | undefined;
      if (thread?.interaction_id && (await isOpenInteraction(tx, thread.interaction_id))) {
        interactionId = thread.interaction_id;
      }
      interactionId ??= await openCustomerThread(tx, {
        tenantId: tenant,
        channel,
        address: mail.from.address.toLowerCase(),
        kind: {
          media: channel.media ?? 'email',
          subtype: channel.interaction_subtype ?? 'InboundNew',
        },
      });
      // A first answer to a campaign mail: the record's conversation is this one from now on.
      if (thread && !thread.interaction_id) {
        await linkMailToInteraction(tx, thread.id, interactionId);
      }
      const attachments: StoredAttachment[] = [];
      for (const entry of allowed) {
        attachments.push({
          mediaId: await insertEmailMedia(tx, {
            tenantId: tenant,
            domain: channel.channel_id,
            filename: entry.filename,
            contentType: entry.contentType,
            content: entry.content,
          }),
          filename: entry.filename,
          contentType: entry.contentType,
          size: entry.content.length,
        });
      }
      const stored = await insertMessage(tx, {
        id: randomUUID(),
        tenantId: tenant,
        interactionId,
        direction: 'inbound',
        senderType: 'customer',
        senderId: mail.from.address.toLowerCase(),
        text,
        clientMessageId: messageId.slice(0, 255),
      });
      const inserted = await insertEmails(tx, [
        {
          id: mailId,
          tenantId: tenant,
          direction: 'inbound',
          interactionId,
          chatMessageId: stored.id,
          attachments,
          campaign: null,
          recordId: null,
          domain: channel.channel_id,
          from: mail.from,
          to: mail.to,
          cc: mail.cc,
          bcc: [],
          replyTo: mail.replyTo?.address ?? null,
          subject: mail.subject,
          text: plain ?? '',
          html: html ?? null,
          messageId,
          inReplyTo: mail.inReplyTo ?? null,
          references: mail.references,
        },
      ]);
      if (inserted.length === 0 || !stored.created) {
        // Seen before: roll back what this delivery added (attachments, a new interaction).
        throw new DuplicateMail(interactionId);
      }
      const work = await recordWork(
        tx,
        inboundQueue,
        {
          tenantId: tenant,
          channel: 'email' as const,
          externalId: messageId.slice(0, 255),
          from: mail.from.address.slice(0, 320),
          to: channel.channel_id,
          receivedAt: new Date().toISOString(),
          interactionId,
          messageId: stored.id,
        },
        deps.enqueue,
      );
      return { interactionId, work };
    })
    .catch((error: unknown) => {
      if (error instanceof DuplicateMail) {
        return { interactionId: error.interactionId, work: undefined };
      }
      throw error;
    });
  if (outcome.work) await dispatchWork(deps.enqueue, [outcome.work]);
  else deps.log.info({ tenant, messageId, source }, 'inbound mail seen before: not stored again');
  return {
    mailId,
    messageId,
    interactionId: outcome.interactionId,
    duplicate: outcome.work === undefined,
  };
}

/** Thrown inside the intake's transaction to roll back a mail stored before. */
class DuplicateMail extends Error {
  constructor(readonly interactionId: string) {
    super('duplicate mail');
  }
}

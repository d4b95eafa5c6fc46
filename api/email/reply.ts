/**
 * An agent's answer in an email conversation: stored as an outbound mail (sent by the
 * outbound-email worker) that threads on the conversation's last mail: `In-Reply-To` its
 * Message-ID, `References` its references and it, the subject with one `Re: `, the customer (their
 * Reply-To, else From) as To, the other people of the last mail kept in Cc (reply-all, without
 * the company's own addresses), the agent's Cc and Bcc added (Bcc goes in the envelope only),
 * sent from the company address the customer wrote to, with the last mail quoted below the
 * answer.
 */
import { randomUUID } from 'node:crypto';
import type { CommonQueryMethods } from 'slonik';
import type { ChannelRow } from '../../db/queries/channels.js';
import { mailsOfInteraction } from '../../db/queries/email-threads.js';
import { insertEmails, type StoredAddress } from '../../db/queries/email.js';
import { domainOf } from '../../domain/email-address.js';
import { AppError } from '../../lib/errors.js';
import { outboundEmailQueue } from '../../queues/outbound-email.js';
import { recordWork, type EnqueueContext, type WorkRecord } from '../../queues/work.js';

/** What an agent may add to an email answer. */
export interface EmailReplyOptions {
  readonly cc?: readonly StoredAddress[] | undefined;
  readonly bcc?: readonly StoredAddress[] | undefined;
}

/** At most this many ids are carried in `References` (the first and the latest ones). */
const MAX_REFERENCES = 20;

const quote = (text: string) =>
  text
    .split(/\r?\n/)
    .map(line => (line.startsWith('>') ? `>${line}` : `> ${line}`))
    .join('\n');

/**
 * Stores the answer's mail and its `outbound-email` work (in the caller's transaction, which
 * stores the agent's message `messageRowId`). Throws a 409 when the conversation has no mail to
 * answer.
 */
export async function recordEmailReply(
  tx: CommonQueryMethods,
  enqueue: EnqueueContext,
  reply: {
    tenantId: string;
    interactionId: string;
    channel: ChannelRow;
    messageRowId: string;
    text: string;
    options: EmailReplyOptions;
  },
): Promise<WorkRecord> {
  const mails = await mailsOfInteraction(tx, reply.interactionId);
  const last = mails.at(-1);
  const lastInbound = mails.findLast(mail => mail.direction === 'inbound');
  if (!last) {
    throw new AppError(
      'NEXUS_ERR_EMAIL_NO_THREAD',
      'the conversation has no mail to answer',
      'params.id',
    );
  }
  const ours = (address: string) => domainOf(address) === reply.channel.channel_id.toLowerCase();
  // The company address the customer wrote to; else the one the conversation's mail came from.
  const mailbox =
    (lastInbound &&
      [...lastInbound.to_addresses, ...lastInbound.cc_addresses].find(entry =>
        ours(entry.address),
      )) ??
    mails.findLast(mail => mail.direction === 'outbound' && ours(mail.from_address))?.from_address;
  // The address only: a name the customer's mail gave it is not the company's to sign.
  const from: StoredAddress = {
    address:
      (typeof mailbox === 'string' ? mailbox : mailbox?.address) ??
      `noreply@${reply.channel.channel_id}`,
  };
  const customer: StoredAddress = lastInbound
    ? lastInbound.reply_to
      ? { address: lastInbound.reply_to }
      : { address: lastInbound.from_address, name: lastInbound.from_name ?? undefined }
    : (last.to_addresses[0] ?? { address: '' });
  const seen = new Set([customer.address.toLowerCase()]);
  const cc: StoredAddress[] = [];
  const others = lastInbound ? [...lastInbound.to_addresses, ...lastInbound.cc_addresses] : [];
  for (const entry of [...others, ...(reply.options.cc ?? [])]) {
    const key = entry.address.toLowerCase();
    if (ours(entry.address) || seen.has(key)) continue;
    seen.add(key);
    cc.push(entry);
  }
  const subject = /^re:/i.test(last.subject.trim()) ? last.subject : `Re: ${last.subject}`;
  const references = [...last.reference_ids, last.message_id];
  const kept =
    references.length > MAX_REFERENCES
      ? [references[0] as string, ...references.slice(-(MAX_REFERENCES - 1))]
      : references;
  const quoted = lastInbound
    ? `\n\nOn ${new Date(lastInbound.created_at).toUTCString()}, ${lastInbound.from_name ?? lastInbound.from_address} wrote:\n${quote(lastInbound.text_body)}`
    : '';
  const id = randomUUID();
  await insertEmails(tx, [
    {
      id,
      tenantId: reply.tenantId,
      interactionId: reply.interactionId,
      chatMessageId: reply.messageRowId,
      campaign: null,
      recordId: null,
      domain: reply.channel.channel_id,
      from,
      to: [customer],
      cc,
      bcc: reply.options.bcc ?? [],
      replyTo: null,
      subject,
      text: `${reply.text}${quoted}`,
      html: null,
      messageId: `<${id}@${reply.channel.channel_id.toLowerCase()}>`,
      inReplyTo: last.message_id,
      references: kept,
    },
  ]);
  return recordWork(tx, outboundEmailQueue, { tenantId: reply.tenantId, recordId: id }, enqueue);
}

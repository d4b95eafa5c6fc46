/**
 * Inbound mail that arrives as MIME (the hub's SMTP listener): read with mailparser into the
 * intake's fields (api/email/inbound.ts), and the listener's hook that takes mail for the
 * tenants' email domains. Header values decoded from encoded words may hold line breaks; they
 * are folded into spaces here (an MTA's mail is not refused for it), so no stored value can
 * inject a header into the answer.
 */
import { createHash } from 'node:crypto';
import { simpleParser, type AddressObject, type EmailAddress } from 'mailparser';
import { tenantOfEmailDomain } from '../../db/queries/channels.js';
import { domainOf, EMAIL_ADDRESS } from '../../domain/email-address.js';
import { isAppError } from '../../lib/errors.js';
import {
  receiveInboundEmail,
  type InboundEmail,
  type InboundEmailDeps,
  type MailAddress,
} from './inbound.js';
import { MailRefused, type InboundMailHook } from './smtp-listener.js';

const MESSAGE_ID = /^<[^\s<>@]+@[^\s<>@]+>$/;

const oneLine = (value: string | undefined) => value?.replace(/[\r\n\0]+/g, ' ').trim();

function addresses(field: AddressObject | AddressObject[] | undefined): MailAddress[] {
  const flat: EmailAddress[] = [field ?? []]
    .flat()
    .flatMap(entry => entry.value)
    .flatMap(entry => (entry.group ? entry.group : [entry]));
  return flat
    .filter(entry => entry.address && EMAIL_ADDRESS.test(entry.address))
    .map(entry => ({ address: entry.address as string, name: oneLine(entry.name) || undefined }));
}

/** A usable Message-ID: `<id@host>`, at most a header line long (998, as the gateway's API). */
const messageId = (value: string | undefined) => {
  const id = value?.trim();
  return id && id.length <= 998 && MESSAGE_ID.test(id) ? id : undefined;
};

/**
 * Reads one mail's MIME text into the intake's fields. A mail without a usable Message-ID gets
 * one derived from its bytes, so the MTA's retry (or its copy for another of our recipients) is
 * recognised as the same mail. A mail without a sender address is refused ({@link MailRefused}).
 */
export async function parseInboundMail(raw: Buffer): Promise<InboundEmail> {
  let parsed;
  try {
    parsed = await simpleParser(raw, { skipImageLinks: true, skipTextToHtml: true });
  } catch (error) {
    throw new MailRefused(`the mail cannot be read: ${(error as Error).message}`);
  }
  const references = [parsed.references ?? []]
    .flat()
    .map(messageId)
    .filter((id): id is string => id !== undefined);
  const [from] = addresses(parsed.from);
  if (!from) throw new MailRefused('the mail has no sender address (From)');
  const [replyTo] = addresses(parsed.replyTo);
  return {
    from,
    to: addresses(parsed.to),
    cc: addresses(parsed.cc),
    replyTo,
    subject: oneLine(parsed.subject) ?? '',
    text: parsed.text,
    html: typeof parsed.html === 'string' ? parsed.html : undefined,
    messageId:
      messageId(parsed.messageId) ??
      `<${createHash('sha256').update(raw).digest('hex').slice(0, 40)}@nexus.invalid>`,
    inReplyTo: messageId(parsed.inReplyTo),
    references,
    attachments: parsed.attachments
      .filter(entry => entry.contentDisposition !== 'inline' || entry.filename)
      .map(entry => ({
        filename: oneLine(entry.filename) || 'attachment',
        contentType: entry.contentType,
        content: entry.content,
      })),
  };
}

/**
 * The SMTP listener's inbound hook: it takes mail for any address at a domain of a tenant's
 * email channel and stores it through the intake, under that tenant.
 */
export function inboundMailHook(deps: InboundEmailDeps): InboundMailHook {
  return {
    async accepts(recipient) {
      return (await tenantOfEmailDomain(deps.db, domainOf(recipient))) !== undefined;
    },
    async receive(recipient, raw) {
      const tenant = await tenantOfEmailDomain(deps.db, domainOf(recipient));
      if (!tenant) return;
      const mail = await parseInboundMail(raw);
      // The envelope's recipient is ours even when the headers name only a list or Bcc'd us.
      const to = mail.to.some(entry => domainOf(entry.address) === domainOf(recipient))
        ? mail.to
        : [...mail.to, { address: recipient }];
      try {
        await receiveInboundEmail(deps, tenant, { ...mail, to }, 'smtp');
      } catch (error) {
        // The intake's refusals (a 4xx) will not change on a retry.
        if (isAppError(error) && error.status < 500) throw new MailRefused(error.message);
        throw error;
      }
    },
  };
}

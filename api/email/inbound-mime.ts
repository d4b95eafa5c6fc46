/**
 * Inbound mail that arrives as MIME (the hub's SMTP listener): read with mailparser into the
 * intake's fields (api/email/inbound.ts), and the listener's hook that takes mail for the
 * tenants' email domains. Header values decoded from encoded words may hold line breaks; they
 * are folded into spaces here (an MTA's mail is not refused for it), so no stored value can
 * inject a header into the answer.
 */
import { simpleParser, type AddressObject, type EmailAddress } from 'mailparser';
import { tenantOfEmailDomain } from '../../db/queries/channels.js';
import { domainOf, EMAIL_ADDRESS } from '../../domain/email-address.js';
import {
  receiveInboundEmail,
  type InboundEmail,
  type InboundEmailDeps,
  type MailAddress,
} from './inbound.js';
import type { InboundMailHook } from './smtp-listener.js';

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

const messageId = (value: string | undefined) => {
  const id = value?.trim();
  return id && MESSAGE_ID.test(id) ? id : undefined;
};

/** Reads one mail's MIME text into the intake's fields. */
export async function parseInboundMail(raw: Buffer): Promise<InboundEmail> {
  const parsed = await simpleParser(raw, { skipImageLinks: true, skipTextToHtml: true });
  const references = [parsed.references ?? []]
    .flat()
    .map(messageId)
    .filter((id): id is string => id !== undefined);
  const [from] = addresses(parsed.from);
  const [replyTo] = addresses(parsed.replyTo);
  return {
    from: from ?? { address: 'unknown@invalid' },
    to: addresses(parsed.to),
    cc: addresses(parsed.cc),
    replyTo,
    subject: oneLine(parsed.subject) ?? '',
    text: parsed.text,
    html: typeof parsed.html === 'string' ? parsed.html : undefined,
    messageId: messageId(parsed.messageId),
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
      await receiveInboundEmail(deps, tenant, { ...mail, to }, 'smtp');
    },
  };
}

import nodemailer from 'nodemailer';
import type Mail from 'nodemailer/lib/mailer/index.js';
import { EMAIL_ADDRESS, LINE_BREAK } from '../domain/email-address.js';
import { WorkFailure } from '../lib/errors.js';

/**
 * Builds the MIME text of one outbound email with nodemailer (never by hand): UTF-8 subjects and
 * names, a text part and an optional HTML part, the `Message-ID` the hub chose (and stored),
 * threading headers, RFC 8058 one-click unsubscribe headers on campaign mail, and a DKIM
 * signature when the sending domain has a key. The outbound-email processor sends these bytes
 * (or, to providers that take fields, the same fields), so the id the hub stores is the id the
 * mail carries.
 * A header value with a line break is refused (`NEXUS_ERR_EMAIL_INVALID`), not folded away.
 */

export interface EmailAddress {
  readonly address: string;
  readonly name?: string | undefined;
}

export interface EmailToBuild {
  /** `<unique@domain>`: chosen and stored before the build, so a retry sends the same id. */
  readonly messageId: string;
  readonly from: EmailAddress;
  readonly to: readonly EmailAddress[];
  readonly cc?: readonly EmailAddress[] | undefined;
  /** In the envelope only: never written into the headers. */
  readonly bcc?: readonly EmailAddress[] | undefined;
  readonly replyTo?: EmailAddress | undefined;
  readonly subject: string;
  readonly text: string;
  readonly html?: string | undefined;
  /** The `Message-ID` this mail answers, and the thread's ids (oldest first). */
  readonly inReplyTo?: string | undefined;
  readonly references?: readonly string[] | undefined;
  /** Campaign mail: the one-click unsubscribe URL (RFC 8058) and an optional mailto. */
  readonly unsubscribe?: { readonly url: string; readonly mailto?: string | undefined } | undefined;
  /** The envelope sender bounces go back to (VERP); the From address when not given. */
  readonly returnPath?: string | undefined;
}

/** A domain's DKIM key: nodemailer signs with it (RSA, PEM; it does not sign with Ed25519). */
export interface DkimKey {
  readonly domainName: string;
  readonly keySelector: string;
  readonly privateKey: string;
}

export interface BuiltEmail {
  /** The message as sent, CRLF line ends, signed when a key was given. */
  readonly raw: Buffer;
  /** SMTP's envelope: the sender and every recipient (To, Cc and Bcc). */
  readonly envelope: { readonly from: string; readonly to: readonly string[] };
}

// A buffer transport: it only builds (and signs) the message, it connects to nothing.
const composer = nodemailer.createTransport({
  streamTransport: true,
  buffer: true,
  newline: 'windows',
});

const MESSAGE_ID = /^<[^\s<>@]+@[^\s<>@]+>$/;

const invalid = (message: string) => new WorkFailure('NEXUS_ERR_EMAIL_INVALID', message);

function headerText(field: string, value: string): string {
  if (LINE_BREAK.test(value)) throw invalid(`${field} holds a line break`);
  return value;
}

function address(field: string, value: EmailAddress): Mail.Address {
  if (!EMAIL_ADDRESS.test(value.address)) throw invalid(`${field} is not an email address`);
  return { address: value.address, name: headerText(`${field} name`, value.name ?? '') };
}

function messageId(field: string, value: string): string {
  if (!MESSAGE_ID.test(value)) throw invalid(`${field} must be <id@domain>`);
  return value;
}

/** Builds (and signs) one email; throws a permanent `NEXUS_ERR_EMAIL_INVALID` for bad input. */
export async function buildEmail(mail: EmailToBuild, dkim?: DkimKey): Promise<BuiltEmail> {
  const to = mail.to.map((entry, index) => address(`to.${index}`, entry));
  if (to.length === 0) throw invalid('to names no recipient');
  const cc = (mail.cc ?? []).map((entry, index) => address(`cc.${index}`, entry));
  (mail.bcc ?? []).forEach((entry, index) => address(`bcc.${index}`, entry));
  const headers: Record<string, string> = {};
  if (mail.unsubscribe) {
    const url = headerText('unsubscribe.url', mail.unsubscribe.url);
    // RFC 8058 asks for https; plain http is accepted for a hub on loopback (development).
    if (
      !/^https:\/\//i.test(url) &&
      !/^http:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d+)?\//i.test(url)
    ) {
      throw invalid('unsubscribe.url must be an https URL');
    }
    const mailto = mail.unsubscribe.mailto
      ? address('unsubscribe.mailto', { address: mail.unsubscribe.mailto }).address
      : undefined;
    headers['List-Unsubscribe'] = [`<${url}>`, ...(mailto ? [`<mailto:${mailto}>`] : [])].join(
      ', ',
    );
    headers['List-Unsubscribe-Post'] = 'List-Unsubscribe=One-Click';
  }
  const message: Mail.Options = {
    messageId: messageId('messageId', mail.messageId),
    from: address('from', mail.from),
    to,
    subject: headerText('subject', mail.subject),
    text: mail.text,
    headers,
    ...(cc.length ? { cc } : {}),
    // Bcc goes in the envelope only (a buffer transport would keep a Bcc header).
    envelope: {
      from: mail.returnPath
        ? address('returnPath', { address: mail.returnPath }).address
        : mail.from.address,
      to: [...mail.to, ...(mail.cc ?? []), ...(mail.bcc ?? [])].map(entry => entry.address),
    },
    ...(mail.replyTo ? { replyTo: address('replyTo', mail.replyTo) } : {}),
    ...(mail.html !== undefined ? { html: mail.html } : {}),
    ...(mail.inReplyTo ? { inReplyTo: messageId('inReplyTo', mail.inReplyTo) } : {}),
    ...(mail.references?.length
      ? {
          references: mail.references.map((id, index) => messageId(`references.${index}`, id)),
        }
      : {}),
    ...(dkim ? { dkim: { ...dkim } } : {}),
  };
  const info = (await composer.sendMail(message)) as {
    message: Buffer;
    envelope: { from: string; to: string[] };
  };
  // Never send unsigned what should be signed (nodemailer skips a key it cannot use).
  if (dkim && !/^DKIM-Signature:/im.test(info.message.toString('latin1'))) {
    throw new WorkFailure(
      'NEXUS_ERR_EMAIL_DKIM_FAILED',
      `the DKIM key of ${dkim.domainName} did not sign the message`,
    );
  }
  return { raw: info.message, envelope: { from: info.envelope.from, to: info.envelope.to } };
}

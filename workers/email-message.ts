import { createSign } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import nodemailer from 'nodemailer';
import type Mail from 'nodemailer/lib/mailer/index.js';
import { EMAIL_ADDRESS, LINE_BREAK } from '../domain/email-address.js';
import { WorkFailure } from '../lib/errors.js';

/**
 * Builds the MIME text of one outbound email with nodemailer (never by hand): UTF-8 subjects and
 * names, a text part and an optional HTML part, the `Message-ID` the hub chose (and stored),
 * threading headers, RFC 8058 one-click unsubscribe headers on campaign mail, and a DKIM
 * signature when the sending domain has a key. The outbound-email processor hands the composed
 * message to the provider: the SMTP pool builds (and signs) it as it sends, SparkPost takes the
 * bytes, the gateways take the fields; the id the hub stores is the id the mail carries either way.
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

/** A checked message, not built yet: a transport builds it while it sends, or `raw()` here. */
export interface ComposedEmail {
  /** Nodemailer's message: fields, envelope and DKIM key, every value checked. */
  readonly message: Mail.Options;
  readonly envelope: BuiltEmail['envelope'];
  /** The MIME text, built once on the first call (SparkPost sends these bytes). */
  raw(): Promise<Buffer>;
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

/** Keys that signed once (by their PEM text): nodemailer signs with them the same way. */
const signingKeys = new LRUCache<string, true>({ max: 1_000 });

/**
 * Throws unless the key signs as nodemailer's DKIM signer does (RSA-SHA256). Nodemailer sends a
 * mail unsigned when its key cannot sign; a key checked here signs every mail, so a transport
 * that builds while it sends never sends unsigned what should be signed.
 */
function assertSigns(dkim: DkimKey): void {
  if (signingKeys.has(dkim.privateKey)) return;
  try {
    createSign('RSA-SHA256').update('nexus').sign(dkim.privateKey);
  } catch (error) {
    throw new WorkFailure(
      'NEXUS_ERR_EMAIL_DKIM_FAILED',
      `the DKIM key of ${dkim.domainName} cannot sign: ${(error as Error).message}`,
    );
  }
  signingKeys.set(dkim.privateKey, true);
}

/** Builds (and signs) one email; throws a permanent `NEXUS_ERR_EMAIL_INVALID` for bad input. */
export async function buildEmail(mail: EmailToBuild, dkim?: DkimKey): Promise<BuiltEmail> {
  const composed = composeEmail(mail, dkim);
  return { raw: await composed.raw(), envelope: composed.envelope };
}

/**
 * Checks one email and composes nodemailer's message, without building it; throws a permanent
 * `NEXUS_ERR_EMAIL_INVALID` for bad input and `NEXUS_ERR_EMAIL_DKIM_FAILED` for a key that
 * cannot sign.
 */
export function composeEmail(mail: EmailToBuild, dkim?: DkimKey): ComposedEmail {
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
  if (mail.returnPath) address('returnPath', { address: mail.returnPath });
  const envelope = {
    from: mail.returnPath ?? mail.from.address,
    to: [...mail.to, ...(mail.cc ?? []), ...(mail.bcc ?? [])].map(entry => entry.address),
  };
  const message: Mail.Options = {
    messageId: messageId('messageId', mail.messageId),
    from: address('from', mail.from),
    to,
    subject: headerText('subject', mail.subject),
    text: mail.text,
    headers,
    ...(cc.length ? { cc } : {}),
    // Bcc goes in the envelope only (a buffer transport would keep a Bcc header).
    envelope: { from: envelope.from, to: [...envelope.to] },
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
  if (dkim) assertSigns(dkim);
  let built: Promise<Buffer> | undefined;
  return {
    message,
    envelope,
    raw: () => (built ??= compose(message, dkim)),
  };
}

async function compose(message: Mail.Options, dkim: DkimKey | undefined): Promise<Buffer> {
  const info = (await composer.sendMail(message)) as { message: Buffer };
  // Never send unsigned what should be signed (nodemailer skips a key it cannot use).
  if (dkim && !/^DKIM-Signature:/im.test(info.message.toString('latin1'))) {
    throw new WorkFailure(
      'NEXUS_ERR_EMAIL_DKIM_FAILED',
      `the DKIM key of ${dkim.domainName} did not sign the message`,
    );
  }
  return info.message;
}

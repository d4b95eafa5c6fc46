import { simpleParser, type Attachment } from 'mailparser';

/**
 * Bounce reports (delivery status notifications) that come back to a mail's VERP return path,
 * in the two forms MTAs send:
 *
 * - RFC 3464: a `message/delivery-status` part (in `multipart/report`, or in `multipart/mixed`
 *   as OpenSMTPD sends it) whose header-style blocks name each recipient's Action and Status.
 *   OpenSMTPD writes `Status: 5.0.0` for every refusal and puts the remote server's answer only
 *   in the notification text (`address: 550 5.1.1 ...`), so a generic status is refined from
 *   the Diagnostic-Code or that line.
 * - Plain text (no delivery-status part), as qmail and some gateways send: the enhanced status
 *   (RFC 3463) and the failed address are found in the notification text.
 *
 * The reported mail's Message-ID comes from an attached `message/rfc822` or
 * `text/rfc822-headers` part, else from the copy of its headers quoted in the text.
 */

export const DSN_ACTIONS = ['failed', 'delayed', 'delivered', 'relayed', 'expanded'] as const;
export type DsnAction = (typeof DSN_ACTIONS)[number];

export interface DsnRecipient {
  /** The address the reporting MTA tried (Final-Recipient), lowercased. */
  readonly finalRecipient: string;
  /** The address as the sender gave it (Original-Recipient), lowercased, when reported. */
  readonly originalRecipient: string | undefined;
  readonly action: DsnAction;
  /**
   * The enhanced status code (`5.1.1`); a generic one (`5.0.0`) is replaced by the more precise
   * code of the same class the diagnostic carries.
   */
  readonly status: string | undefined;
  /** The remote server's answer (Diagnostic-Code without its type, or the text's line). */
  readonly diagnostic: string | undefined;
  /** The SMTP reply code of the diagnostic (`550`), when it has one. */
  readonly smtpCode: number | undefined;
  readonly remoteMta: string | undefined;
}

export interface DeliveryReport {
  /** `delivery-status`: RFC 3464 fields; `text`: read from the notification text. */
  readonly form: 'delivery-status' | 'text';
  /** The report's own Message-ID (a retried report carries the same one). */
  readonly messageId: string | undefined;
  /** The Message-ID of the mail the report is about, when the report shows it. */
  readonly originalMessageId: string | undefined;
  readonly reportingMta: string | undefined;
  readonly recipients: readonly DsnRecipient[];
}

/** Who sends bounces, and what they call them, for reports without a delivery-status part. */
const BOUNCE_SENDER = /^(?:mailer-daemon|postmaster|mail-daemon|mdaemon)@/i;
const BOUNCE_SUBJECT =
  /undeliver|not (?:be )?delivered|delivery (?:status )?(?:notification|failure|failed|report)|returned mail|failure notice|non-?delivery|mail delivery (?:failed|system)/i;

/** At most this many characters of a diagnostic are kept (it ends up in a status reason). */
const DIAGNOSTIC_CHARS = 500;

const ENHANCED = /\b([245])\.(\d{1,3})\.(\d{1,3})\b/;
const ENHANCED_ALL = /\b([45])\.(\d{1,3})\.(\d{1,3})\b/g;
const REPLY_CODE = /(?:^|[\s(:;'"])([245]\d\d)(?=[\s-]|$)/;
const ADDRESS = /<?([^\s<>()[\]",;:@]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+)>?/g;

/**
 * Header-style fields (RFC 822 syntax): `Name: value` lines, a line starting with white space
 * continues the previous field. Names are lowercased; the first of a repeated field is kept.
 */
export function parseFieldBlock(block: string): Map<string, string> {
  const fields = new Map<string, string>();
  let name: string | undefined;
  let value = '';
  const flush = () => {
    if (name !== undefined && !fields.has(name)) fields.set(name, value.trim());
  };
  for (const line of block.split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && name !== undefined) {
      value += ` ${line.trim()}`;
      continue;
    }
    flush();
    const colon = line.indexOf(':');
    if (colon <= 0) {
      name = undefined;
      continue;
    }
    name = line.slice(0, colon).trim().toLowerCase();
    value = line.slice(colon + 1);
  }
  flush();
  return fields;
}

/** The blocks of a delivery-status body: the per-message fields, then one per recipient. */
function fieldBlocks(text: string): Map<string, string>[] {
  return text
    .split(/\r?\n[ \t]*\r?\n/)
    .map(block => block.replace(/^(?:[ \t]*\r?\n)+/, ''))
    .filter(block => block.trim() !== '')
    .map(parseFieldBlock);
}

/** `rfc822; <ann@example.com>` → `ann@example.com`. */
function typedAddress(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const bare = (value.includes(';') ? value.slice(value.indexOf(';') + 1) : value).trim();
  const address = bare.replace(/^<|>$/g, '').trim().toLowerCase();
  return address.includes('@') ? address : undefined;
}

/** `smtp; 550 5.1.1 ...` → `550 5.1.1 ...` (the type names the diagnostic's syntax). */
function untyped(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const text = /^[A-Za-z-]+;\s*/.test(value) ? value.slice(value.indexOf(';') + 1) : value;
  return text.trim().slice(0, DIAGNOSTIC_CHARS) || undefined;
}

/** The status, refined from the diagnostic when it is generic (`X.0.0`). */
function refinedStatus(status: string | undefined, diagnostic: string | undefined) {
  const given = status ? ENHANCED.exec(status) : null;
  const found = diagnostic ? ENHANCED.exec(diagnostic) : null;
  if (!given) return found?.[0];
  if (given[2] === '0' && given[3] === '0' && found && found[1] === given[1]) return found[0];
  return given[0];
}

const replyCodeOf = (diagnostic: string | undefined): number | undefined => {
  const match = diagnostic ? REPLY_CODE.exec(diagnostic) : null;
  return match ? Number(match[1]) : undefined;
};

const isAction = (value: string): value is DsnAction =>
  (DSN_ACTIONS as readonly string[]).includes(value);

/** The Message-ID in a header block (an attached message or its headers). */
function messageIdOfHeaders(text: string): string | undefined {
  const head = text.split(/\r?\n\r?\n/, 1)[0] ?? '';
  const id = parseFieldBlock(head).get('message-id');
  return id ? /<[^<>\s]+>/.exec(id)?.[0] : undefined;
}

/** The notification text's line about `address` (OpenSMTPD: `address: 550 5.1.1 ...`). */
function lineAbout(text: string, address: string): string | undefined {
  for (const line of text.split(/\r?\n/)) {
    const trimmed = line.trim();
    const lower = trimmed.toLowerCase();
    if (lower.startsWith(`${address}:`) || lower.startsWith(`<${address}>:`)) {
      const rest = trimmed.slice(trimmed.indexOf(':') + 1).trim();
      if (rest) return rest.slice(0, DIAGNOSTIC_CHARS);
    }
  }
  return undefined;
}

/**
 * Where the notification ends in a plain-text report: the copy of the original mail that
 * follows it (its header lines) holds addresses and codes that are not the report's.
 */
function notificationOnly(text: string): string {
  const lines = text.split(/\r?\n/);
  const start = lines.findIndex(line =>
    /^\s*(?:-+\s*)?(?:below this line is a copy of the message|original message follows|original message headers)/i.test(
      line,
    ),
  );
  const headers = lines.findIndex(line =>
    /^(?:Return-Path|Received|Message-ID|DKIM-Signature):/i.test(line),
  );
  const cut = [start, headers].filter(index => index >= 0);
  return cut.length ? lines.slice(0, Math.min(...cut)).join('\n') : text;
}

/**
 * The recipients of a plain-text report: each line with an enhanced status code (4.x.y or
 * 5.x.y) is about the address on it, or the nearest one in the three lines above it (qmail
 * names the address on its own line, the remote answer below). Addresses in `exclude` (the
 * report's own sender and recipient) are never recipients.
 */
function recipientsOfText(text: string, exclude: ReadonlySet<string>): DsnRecipient[] {
  const lines = notificationOnly(text).split(/\r?\n/);
  const addressesOn = (line: string) =>
    [...line.matchAll(ADDRESS)]
      .map(match => match[1]!.toLowerCase())
      .filter(address => !exclude.has(address));
  const found = new Map<string, DsnRecipient>();
  lines.forEach((line, index) => {
    const codes = [...line.matchAll(ENHANCED_ALL)];
    if (codes.length === 0) return;
    let addresses = addressesOn(line);
    for (let back = 1; addresses.length === 0 && back <= 3 && index - back >= 0; back++) {
      addresses = addressesOn(lines[index - back]!);
    }
    const status = codes[0]![0];
    const diagnostic = line.trim().slice(0, DIAGNOSTIC_CHARS);
    for (const address of addresses) {
      if (found.has(address)) continue;
      found.set(address, {
        finalRecipient: address,
        originalRecipient: undefined,
        action: status.startsWith('5') ? 'failed' : 'delayed',
        status,
        diagnostic,
        smtpCode: replyCodeOf(diagnostic),
        remoteMta: undefined,
      });
    }
  });
  return [...found.values()];
}

const isDeliveryStatus = (attachment: Attachment) =>
  attachment.contentType === 'message/delivery-status' ||
  attachment.contentType === 'message/global-delivery-status';

/**
 * Reads a bounce report. Answers undefined for a mail that is no report (an auto-reply, a
 * person's answer to the return path): nothing in it names a recipient with a status.
 */
export async function parseDeliveryReport(
  raw: Buffer | string,
): Promise<DeliveryReport | undefined> {
  // The delivery-status part as an attachment (by default mailparser folds it into the text),
  // and attached messages kept whole rather than parsed into the report's own parts.
  const parsed = await simpleParser(raw, {
    keepDeliveryStatus: true,
    ignoreEmbedded: true,
    skipHtmlToText: false,
    skipTextToHtml: true,
    skipImageLinks: true,
  });
  const text = parsed.text ?? '';
  let originalMessageId: string | undefined;
  for (const attachment of parsed.attachments) {
    if (
      attachment.contentType === 'message/rfc822' ||
      attachment.contentType === 'message/global' ||
      attachment.contentType === 'text/rfc822-headers' ||
      attachment.contentType === 'message/global-headers'
    ) {
      originalMessageId ??= messageIdOfHeaders(attachment.content.toString('utf8'));
    }
  }
  const messageId = parsed.messageId ?? undefined;
  const status = parsed.attachments.find(isDeliveryStatus);
  if (status) {
    const [perMessage, ...perRecipient] = fieldBlocks(status.content.toString('utf8'));
    const recipients: DsnRecipient[] = [];
    for (const fields of perRecipient) {
      const finalRecipient = typedAddress(fields.get('final-recipient'));
      const action = fields.get('action')?.toLowerCase().split(/[\s(]/, 1)[0] ?? '';
      if (!finalRecipient || !isAction(action)) continue;
      const originalRecipient = typedAddress(fields.get('original-recipient'));
      const diagnostic =
        untyped(fields.get('diagnostic-code')) ??
        lineAbout(text, finalRecipient) ??
        (originalRecipient ? lineAbout(text, originalRecipient) : undefined);
      recipients.push({
        finalRecipient,
        originalRecipient,
        action,
        status: refinedStatus(fields.get('status'), diagnostic),
        diagnostic,
        smtpCode: replyCodeOf(diagnostic),
        remoteMta: untyped(fields.get('remote-mta')),
      });
    }
    return {
      form: 'delivery-status',
      messageId,
      originalMessageId: originalMessageId ?? messageIdOfHeaders(notificationTail(text)),
      reportingMta: untyped(perMessage?.get('reporting-mta')),
      recipients,
    };
  }
  // Without a delivery-status part only a mail that says it is a bounce is read as one: an
  // auto-reply to the return path is not (its dates and phone numbers look like status codes).
  const from = parsed.from?.value[0]?.address?.toLowerCase() ?? '';
  const header = parsed.headers.get('auto-submitted');
  const autoSubmitted = typeof header === 'string' ? header.toLowerCase() : '';
  const saysBounce =
    BOUNCE_SENDER.test(from) ||
    (BOUNCE_SUBJECT.test(parsed.subject ?? '') && !autoSubmitted.startsWith('auto-replied'));
  if (!saysBounce) return undefined;
  const exclude = new Set(
    [...(parsed.from?.value ?? []), ...toAddresses(parsed.to)]
      .map(entry => entry.address?.toLowerCase())
      .filter((address): address is string => address !== undefined),
  );
  const recipients = recipientsOfText(text, exclude);
  if (recipients.length === 0) return undefined;
  return {
    form: 'text',
    messageId,
    originalMessageId: originalMessageId ?? messageIdOfHeaders(notificationTail(text)),
    reportingMta: undefined,
    recipients,
  };
}

/** The copy of the original's headers quoted at the end of a plain-text report, if any. */
function notificationTail(text: string): string {
  const lines = text.split(/\r?\n/);
  const start = lines.findIndex(line => /^(?:Return-Path|Received|Message-ID):/i.test(line));
  return start >= 0 ? lines.slice(start).join('\n') : '';
}

function toAddresses(
  to: Awaited<ReturnType<typeof simpleParser>>['to'],
): { address?: string | undefined }[] {
  if (!to) return [];
  return (Array.isArray(to) ? to : [to]).flatMap(entry => entry.value);
}

/**
 * The hub's SMTP listener (`NEXUS_EMAIL_SMTP_PORT`): where bounce reports for outbound mail come
 * back, and where customers' mail to the tenants' email domains arrives. Every mail leaves with the VERP return path `bounces+<mail id>@<bounce domain>`
 * (domain/email-links.ts), so a report names its mail by the address it is sent to. The
 * listener takes mail only for those addresses and for the addresses its inbound hook accepts
 * (api/email/inbound-mime.ts); anything else is refused at RCPT as relaying.
 *
 * A report is read (domain/email-dsn.ts) and applied in one transaction: marked seen (a
 * retried report changes nothing twice), the mail `bounced` for recipients whose Action is
 * `failed` (`delivered` for a success report), a hard bounce's address suppressed. The sending
 * MTA gets its 250 only after the commit; a database failure answers 451 so that it retries.
 */
import { createHash } from 'node:crypto';
import {
  SMTPServer,
  type SMTPServerAddress,
  type SMTPServerDataStream,
  type SMTPServerSession,
} from 'smtp-server';
import type { CommonQueryMethods, DatabasePool } from 'slonik';
import { changeEmailConsent } from '../../db/queries/email-consent.js';
import {
  applyEmailStatus,
  findEmailById,
  markFeedbackSeen,
  type EmailRecipientsRow,
} from '../../db/queries/email.js';
import {
  parseDeliveryReport,
  type DeliveryReport,
  type DsnRecipient,
} from '../../domain/email-dsn.js';
import { mailIdOfReturnPath } from '../../domain/email-links.js';
import { isHardBounce, suppressionKey } from '../../domain/email-status.js';
import type { Logger } from '../../lib/logger.js';
import { emailFeedbackTotal } from '../../lib/metrics.js';

/** The largest mail the listener takes (a report quotes at most its mail). */
export const SMTP_LISTENER_MAX_BYTES = 10 * 1024 * 1024;

/** The SMTP envelope of one received mail. */
export interface SmtpEnvelope {
  /** MAIL FROM; empty for the null sender bounces use. */
  readonly mailFrom: string;
  readonly rcptTo: readonly string[];
  readonly remoteAddress: string;
  /** What the client said in HELO/EHLO. */
  readonly clientHostname: string;
}

/**
 * Inbound mail to the tenants' addresses (api/email/inbound-mime.ts). `accepts`
 * is asked at RCPT TO, so that mail for an unknown address is refused before its data is sent;
 * `receive` is called once per accepted recipient with the whole message and must resolve only
 * when the mail is stored, since the sending MTA drops its copy at the 250 that follows.
 * A {@link MailRefused} answers 550; any other rejection 451 (the MTA retries).
 */
export interface InboundMailHook {
  accepts(recipient: string): Promise<boolean>;
  receive(recipient: string, raw: Buffer, envelope: SmtpEnvelope): Promise<void>;
}

export interface SmtpListenerOptions {
  port: number;
  host: string;
  db: DatabasePool;
  log: Logger;
  /** The VERP return path's domain; unset, no bounce address is taken. */
  bounceDomain: string | undefined;
  inbound?: InboundMailHook | undefined;
  /** @defaultValue {@link SMTP_LISTENER_MAX_BYTES} */
  maxBytes?: number;
}

export interface SmtpListener {
  /** The port it listens on (the one given, or the one chosen for port 0). */
  readonly port: number;
  /** Stops taking connections and lets open sessions end (cut after a few seconds). */
  close(): Promise<void>;
}

/**
 * Thrown by the inbound hook for a mail that can never be stored (no sender address, content
 * the intake refuses): answered 550, not retried.
 */
export class MailRefused extends Error {
  override readonly name = 'MailRefused';
}

/** An SMTP reply to an MTA: the code and the text after it (with its enhanced status). */
const reply = (code: number, text: string) =>
  Object.assign(new Error(text), { responseCode: code });

/** What applying a report did, for the log and the metrics (a change of status counts once). */
type Outcome = 'bounced' | 'delivered' | 'no-change' | 'duplicate' | 'unknown-mail' | 'not-ours';

export async function startSmtpListener(options: SmtpListenerOptions): Promise<SmtpListener> {
  const { db, bounceDomain, inbound } = options;
  const log = options.log.child({ component: 'smtp-listener' });
  const maxBytes = options.maxBytes ?? SMTP_LISTENER_MAX_BYTES;

  /** The mail id a recipient address is a bounce address of. */
  const mailIdOf = (address: string) =>
    bounceDomain ? mailIdOfReturnPath(address, bounceDomain) : undefined;

  const server = new SMTPServer({
    secure: false,
    // Plain SMTP from the MTAs that relay reports here; TLS, if any, ends in front of it.
    disabledCommands: ['AUTH', 'STARTTLS'],
    authOptional: true,
    logger: false,
    size: maxBytes,
    rejectOversized: true,
    maxClients: 200,
    closeTimeout: 5_000,
    onRcptTo(address: SMTPServerAddress, _session: SMTPServerSession, callback) {
      if (mailIdOf(address.address)) return callback();
      if (!inbound) return callback(reply(550, '5.7.1 relaying denied'));
      inbound.accepts(address.address).then(
        accepted => callback(accepted ? null : reply(550, '5.7.1 relaying denied')),
        (error: unknown) => {
          log.error({ err: error }, 'the inbound mail hook failed at RCPT');
          callback(reply(451, '4.3.0 try again later'));
        },
      );
    },
    onData(stream: SMTPServerDataStream, session: SMTPServerSession, callback) {
      const chunks: Buffer[] = [];
      let bytes = 0;
      stream.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        // Over the cap the server answers 552 itself; what is over is not kept.
        if (bytes <= maxBytes) chunks.push(chunk);
      });
      stream.on('end', () => {
        if (stream.sizeExceeded) return callback(reply(552, '5.3.4 message too big'));
        const raw = Buffer.concat(chunks);
        const envelope: SmtpEnvelope = {
          mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          rcptTo: session.envelope.rcptTo.map(entry => entry.address),
          remoteAddress: session.remoteAddress,
          clientHostname: session.clientHostname,
        };
        receive(raw, envelope).then(
          () => callback(null, 'OK'),
          (error: unknown) => {
            // A mail that can never be stored is refused for good (the MTA returns it to its
            // sender); anything else (the database) is worth the MTA's retry.
            if (error instanceof MailRefused) {
              log.warn({ from: envelope.mailFrom, why: error.message }, 'a received mail refused');
              return callback(reply(550, `5.6.0 ${error.message}`));
            }
            log.error({ err: error, from: envelope.mailFrom }, 'a received mail was not stored');
            callback(reply(451, '4.3.0 try again later'));
          },
        );
      });
    },
  });

  /** Every recipient's mail is applied or stored before the 250; any failure is a 451. */
  const receive = async (raw: Buffer, envelope: SmtpEnvelope) => {
    for (const recipient of envelope.rcptTo) {
      const mailId = mailIdOf(recipient);
      if (mailId) await applyReport(mailId, raw, envelope);
      else await inbound?.receive(recipient, raw, envelope);
    }
  };

  const applyReport = async (mailId: string, raw: Buffer, envelope: SmtpEnvelope) => {
    let report: DeliveryReport | undefined;
    try {
      report = await parseDeliveryReport(raw);
    } catch (error) {
      // A report that cannot be read will not be readable when retried either.
      log.warn(
        { err: error, mailId, from: envelope.mailFrom },
        'unreadable mail to a bounce address',
      );
      return;
    }
    if (!report) {
      log.info(
        { mailId, from: envelope.mailFrom },
        'a mail to a bounce address is no delivery report: ignored',
      );
      return;
    }
    const key = `${mailId} ${report.messageId ?? createHash('sha256').update(raw).digest('hex')}`;
    const applied = await db.transaction(tx => applyToMail(tx, mailId, key, report));
    const strange = applied.outcome === 'unknown-mail' || applied.outcome === 'not-ours';
    log[strange ? 'warn' : 'info'](
      {
        mailId,
        outcome: applied.outcome,
        form: report.form,
        reportingMta: report.reportingMta,
        recipients: report.recipients.map(r => `${r.finalRecipient} ${r.action} ${r.status ?? ''}`),
      },
      'bounce report',
    );
    const domain = applied.mail?.domain;
    if (domain && (applied.outcome === 'bounced' || applied.outcome === 'delivered')) {
      emailFeedbackTotal.inc({ domain, kind: applied.outcome });
    }
    if (domain && applied.suppressed > 0) {
      emailFeedbackTotal.inc({ domain, kind: 'hard_bounce' }, applied.suppressed);
    }
  };

  const applyToMail = async (
    tx: CommonQueryMethods,
    mailId: string,
    key: string,
    report: DeliveryReport,
  ): Promise<{ outcome: Outcome; mail?: EmailRecipientsRow; suppressed: number }> => {
    const mail = await findEmailById(tx, mailId);
    // No retry storm for a mail the hub does not know (deleted with its tenant, or forged).
    if (!mail) return { outcome: 'unknown-mail', suppressed: 0 };
    if (report.originalMessageId && report.originalMessageId !== mail.message_id) {
      return { outcome: 'not-ours', mail, suppressed: 0 };
    }
    if (!(await markFeedbackSeen(tx, mail.tenant_id, 'smtp-bounce', key))) {
      return { outcome: 'duplicate', mail, suppressed: 0 };
    }
    const failed = recipientsOfMail(mail, report.recipients, 'failed');
    if (failed.length > 0) {
      const reason = failed
        .map(
          ({ address, entry }) =>
            `${address}: ${entry.status ?? 'failed'}${entry.diagnostic ? ` (${entry.diagnostic})` : ''}`,
        )
        .join('; ')
        .slice(0, 1_000);
      const applied = await applyEmailStatus(
        tx,
        { tenantId: mail.tenant_id, id: mail.id },
        { status: 'bounced', reason },
      );
      let suppressed = 0;
      for (const { address, entry } of failed) {
        if (!isHardBounce(entry.status, entry.smtpCode)) continue;
        const changed = await changeEmailConsent(tx, {
          tenantId: mail.tenant_id,
          address,
          action: 'suppress',
          reason: 'hard-bounce',
          source: 'smtp-bounce',
          detail:
            `${entry.status ?? ''} ${entry.diagnostic ?? ''} (report ${report.messageId ?? 'without Message-ID'})`
              .trim()
              .slice(0, 500),
        });
        if (changed) suppressed++;
      }
      return { outcome: applied?.changed ? 'bounced' : 'no-change', mail, suppressed };
    }
    if (recipientsOfMail(mail, report.recipients, 'delivered').length > 0) {
      const applied = await applyEmailStatus(
        tx,
        { tenantId: mail.tenant_id, id: mail.id },
        { status: 'delivered', reason: null },
      );
      return { outcome: applied?.changed ? 'delivered' : 'no-change', mail, suppressed: 0 };
    }
    // Delayed, relayed, expanded: the mail is still on its way.
    return { outcome: 'no-change', mail, suppressed: 0 };
  };

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (error: Error) => log.error({ err: error }, 'smtp listener error'));
  const { port } = server.server.address() as { port: number };
  log.info({ port, bounceDomain }, 'smtp listener listening');
  let closing: Promise<void> | undefined;
  return {
    port,
    close: () => (closing ??= new Promise<void>(resolve => server.close(() => resolve()))),
  };
}

/**
 * The report's recipients with `action` that are the mail's, by the address it was sent to:
 * Original-Recipient when the MTA kept it, else Final-Recipient. A report about one address the
 * mail was not sent to (a forward rewrote it) is about the mail's only recipient, when it has
 * one; the addresses of other mail are never suppressed through this one's report.
 */
function recipientsOfMail(
  mail: EmailRecipientsRow,
  recipients: readonly DsnRecipient[],
  action: DsnRecipient['action'],
): { address: string; entry: DsnRecipient }[] {
  const ours = new Map(
    [...mail.to_addresses, ...mail.cc_addresses, ...mail.bcc_addresses].map(entry => [
      suppressionKey(entry.address),
      entry.address,
    ]),
  );
  const matching = recipients.filter(entry => entry.action === action);
  const found: { address: string; entry: DsnRecipient }[] = [];
  for (const entry of matching) {
    const address =
      (entry.originalRecipient && ours.get(entry.originalRecipient)) ??
      ours.get(entry.finalRecipient);
    if (address) found.push({ address, entry });
  }
  if (found.length === 0 && matching.length === 1 && recipients.length === 1 && ours.size === 1) {
    found.push({ address: [...ours.values()][0]!, entry: matching[0]! });
  }
  return found;
}

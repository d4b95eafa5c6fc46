import { createHash } from 'node:crypto';
import nodemailer, { type Transporter } from 'nodemailer';
import type SMTPPool from 'nodemailer/lib/smtp-pool/index.js';
import { EgressBlockedError } from '../../lib/egress.js';
import {
  EmailProviderUnavailableError,
  EmailRejectedError,
  refused,
  type EmailProvider,
  type EmailProviderContext,
  type RejectedRecipient,
} from './provider.js';

/**
 * The SMTP provider (`Email` provider `SMTP`, settings in the `SmtpEmail` service): nodemailer's
 * pooled transport per tenant relay, building and sending the message the processor composed
 * (signed when the domain has a DKIM key) with the VERP return path as the envelope sender. The relay's host is
 * resolved once per pool through the egress guard and the pool connects to that address, so the
 * egress rules hold for SMTP as for HTTP (TLS still checks the certificate against the name).
 *
 * The relay's answers: every recipient refused at RCPT with 5xx is a bounce
 * (`EmailRejectedError`; the processor marks the mail `bounced` and suppresses a hard refusal),
 * 4xx (authentication's included) and connection trouble are retried, any other 5xx (the sender
 * refused at MAIL FROM, authentication, the message refused at DATA) fails the mail.
 */

interface SmtpSettings {
  url: string;
  data: { starttls?: 'required' | 'opportunistic'; maxConnections: number; maxMessages: number };
  secret: { username?: string; password?: string };
}

interface Pool {
  key: string;
  transport: Transporter<SMTPPool.SentMessageInfo>;
}

/** Nodemailer's error fields (it sets them on the Error it rejects with). */
interface SmtpError extends Error {
  code?: string;
  responseCode?: number;
  response?: string;
  /** The SMTP command refused (`MAIL FROM`, `RCPT TO`, `DATA`), or `API` for bad input. */
  command?: string;
  rejected?: string[];
  rejectedErrors?: SmtpError[];
  recipient?: string;
}

const ENHANCED = /\b([245]\.\d{1,3}\.\d{1,3})\b/;

function rejectedOf(error: SmtpError, recipients: readonly string[]): RejectedRecipient[] {
  const errors = error.rejectedErrors?.length ? error.rejectedErrors : [error];
  return errors.map((entry, index) => ({
    address: entry.recipient ?? error.rejected?.[index] ?? recipients[index] ?? '',
    code: entry.responseCode,
    status: ENHANCED.exec(entry.response ?? '')?.[1],
    response: (entry.response ?? entry.message).slice(0, 500),
  }));
}

export class SmtpPools {
  /**
   * One pool per tenant, replaced when its SmtpEmail service changes. The promise is kept, so
   * concurrent first sends share one pool instead of each opening its own.
   */
  private readonly pools = new Map<string, { key: string; pool: Promise<Pool> }>();

  private async pool(tenant: string, ctx: EmailProviderContext): Promise<Pool> {
    const service = await ctx.service('SmtpEmail');
    if (!service?.url) {
      throw refused(
        'NEXUS_ERR_EMAIL_PROVIDER_NOT_CONFIGURED',
        'the tenant has no SmtpEmail service',
      );
    }
    const settings = {
      url: service.url,
      data: service.data as SmtpSettings['data'],
      secret: (service.secret ?? {}) as SmtpSettings['secret'],
    };
    const key = createHash('sha256').update(JSON.stringify(settings)).digest('hex');
    // Checked and replaced without an await in between: concurrent sends share one pool.
    const current = this.pools.get(tenant);
    if (current?.key === key) return current.pool;
    const opening = this.open(key, settings, ctx);
    this.pools.set(tenant, { key, pool: opening });
    // The replaced pool's connections end after the mails they are sending.
    current?.pool.then(
      old => old.transport.close(),
      () => undefined,
    );
    // A pool that could not open (its host refused by the egress rules) is tried again next time.
    opening.catch(() => {
      if (this.pools.get(tenant)?.pool === opening) this.pools.delete(tenant);
    });
    return opening;
  }

  private async open(
    key: string,
    settings: SmtpSettings,
    ctx: EmailProviderContext,
  ): Promise<Pool> {
    const url = new URL(settings.url);
    const secure = url.protocol === 'smtps:';
    const address = await ctx.guard.resolveHost(url.hostname);
    const transport = nodemailer.createTransport({
      pool: true,
      host: address,
      port: Number(url.port || (secure ? 465 : 587)),
      secure,
      requireTLS: !secure && settings.data.starttls === 'required',
      ignoreTLS: false,
      maxConnections: settings.data.maxConnections,
      maxMessages: settings.data.maxMessages,
      connectionTimeout: ctx.timeoutMs,
      greetingTimeout: ctx.timeoutMs,
      socketTimeout: Math.max(ctx.timeoutMs, 30_000),
      tls: { servername: url.hostname.replace(/^\[|\]$/g, '') },
      ...(settings.secret.username
        ? { auth: { user: settings.secret.username, pass: settings.secret.password ?? '' } }
        : {}),
    } satisfies SMTPPool.Options);
    return { key, transport };
  }

  readonly send: EmailProvider = async (send, ctx) => {
    const { transport } = await this.pool(send.tenant, ctx);
    let info: SMTPPool.SentMessageInfo;
    try {
      // The pool builds (and signs) the message while it sends it.
      info = await transport.sendMail(send.message.message);
    } catch (caught) {
      if (caught instanceof EgressBlockedError) throw caught;
      const error = caught as SmtpError;
      const code = error.responseCode;
      // Every recipient refused at RCPT: a bounce. A refused sender (MAIL FROM) or message
      // (DATA) is the relay refusing the mail, not the recipients.
      if (
        error.command === 'RCPT TO' &&
        code !== undefined &&
        code >= 500 &&
        error.rejectedErrors?.length
      ) {
        throw new EmailRejectedError(
          `the relay refused every recipient: ${error.response ?? error.message}`,
          rejectedOf(error, send.envelope.to),
        );
      }
      if (code !== undefined && code >= 500) {
        throw refused(
          'NEXUS_ERR_EMAIL_PROVIDER_REFUSED',
          `the relay refused ${error.command ?? 'the mail'}: ${error.response ?? code}`,
        );
      }
      // No STARTTLS where it is required, an envelope the relay cannot take: refused for good.
      // (A 4xx, authentication's included, is retried below.)
      if (
        code === undefined &&
        (error.code === 'ETLS' || error.code === 'EENVELOPE' || error.code === 'EAUTH')
      ) {
        throw refused('NEXUS_ERR_EMAIL_PROVIDER_REFUSED', `the relay: ${error.message}`);
      }
      throw new EmailProviderUnavailableError(`the relay: ${error.response ?? error.message}`, {
        cause: error,
      });
    }
    const rejected = info.rejected.length
      ? rejectedOf(
          {
            name: 'rejected',
            message: 'rejected',
            rejectedErrors: info.rejectedErrors,
          },
          info.rejected.map(entry => String(entry)),
        )
      : [];
    return { providerMessageId: send.mail.messageId, rejected };
  };

  close(): void {
    for (const entry of this.pools.values()) {
      entry.pool.then(
        open => open.transport.close(),
        () => undefined,
      );
    }
    this.pools.clear();
  }
}

import {
  EmailRejectedError,
  expectSuccess,
  jsonAnswer,
  providerRequest,
  refused,
  type EmailProvider,
  type EmailSend,
  type RejectedRecipient,
} from './provider.js';

/**
 * SparkPost (`Email` provider `SparkPost`, service `SparkPostEmail` {url, secret.apikey}): one
 * transmission per mail, `POST <url>/api/v1/transmissions` with the raw API key as
 * `Authorization` (no scheme). The content is the MIME text the processor built
 * (`content.email_rfc822`), so the Message-ID, threading, one-click unsubscribe headers and DKIM
 * signature reach the recipient as built: SparkPost generates no headers for RFC822 content.
 * Open and click tracking are off because they rewrite the body (a DKIM signature would break).
 * SparkPost still substitutes `{{...}}` in the top-level headers and the first text and HTML
 * parts: a mail holding such text reaches the recipient changed.
 *
 * Every envelope recipient (To, Cc, Bcc) is a recipient of the transmission, each with
 * `header_to` set to the To header, as SparkPost does for Cc and Bcc. `campaign_id` is the
 * campaign (SparkPost keeps 64 bytes), `metadata` {tenant, mailId} comes back in its event
 * webhooks, and conversation mail is `transactional` (SparkPost's non-transactional suppressions
 * do not apply to it).
 *
 * The answer: `results.id` (the transmission id) is the provider's id. Every recipient rejected
 * (`total_accepted_recipients` 0, or a single-recipient transmission answered 4xx with error
 * 1902 "Message generation rejected", SparkPost's own suppression) makes the mail `bounced`.
 * 420 (sending limit) and 429 wait without an attempt, 408 and 5xx are retried, other 4xx fail
 * the mail (`expectSuccess`).
 */

/** SparkPost's error for a recipient it refuses to generate a message for (its suppression). */
const GENERATION_REJECTED = '1902';

/** SparkPost keeps campaign ids up to 64 bytes. */
const CAMPAIGN_ID_BYTES = 64;

/**
 * The transmissions endpoint under the service URL: the API base (`https://api.sparkpost.com`,
 * `https://api.eu.sparkpost.com`) or a URL that already ends in `/api` or `/api/v1`.
 */
export function transmissionsUrl(base: string): string {
  const url = new URL(base);
  const path = url.pathname.replace(/\/+$/, '');
  url.pathname = /\/api\/v1$/i.test(path)
    ? `${path}/transmissions`
    : /\/api$/i.test(path)
      ? `${path}/v1/transmissions`
      : `${path}/api/v1/transmissions`;
  return url.toString();
}

/** The first `max` bytes of `text` in UTF-8, never cutting a character. */
function clipBytes(text: string, max: number): string {
  if (Buffer.byteLength(text) <= max) return text;
  let clipped = '';
  for (const char of text) {
    if (Buffer.byteLength(clipped + char) > max) break;
    clipped += char;
  }
  return clipped;
}

/** SparkPost's error codes in an answer (`{errors: [{code, message, description}]}`). */
function errorsOf(body: string): { code?: string; message?: string; description?: string }[] {
  try {
    const parsed = JSON.parse(body) as { errors?: unknown };
    return Array.isArray(parsed.errors)
      ? (parsed.errors as { code?: string; message?: string; description?: string }[])
      : [];
  } catch {
    return [];
  }
}

const everyRecipient = (send: EmailSend, response: string): RejectedRecipient[] =>
  send.envelope.to.map(address => ({
    address,
    code: undefined,
    status: undefined,
    response: response.slice(0, 500),
  }));

export const sendSparkPost: EmailProvider = async (send, ctx) => {
  const service = await ctx.service('SparkPostEmail');
  const apikey = (service?.secret as { apikey?: string } | undefined)?.apikey;
  if (!service?.url || !apikey) {
    throw refused(
      'NEXUS_ERR_EMAIL_PROVIDER_NOT_CONFIGURED',
      'the tenant has no SparkPostEmail service (url and secret.apikey)',
    );
  }
  const headerTo = send.mail.to.map(entry => entry.address).join(', ');
  const body = JSON.stringify({
    options: {
      transactional: send.campaign === null,
      open_tracking: false,
      click_tracking: false,
    },
    ...(send.campaign !== null ? { campaign_id: clipBytes(send.campaign, CAMPAIGN_ID_BYTES) } : {}),
    metadata: { tenant: send.tenant, mailId: send.id },
    recipients: send.envelope.to.map(email => ({ address: { email, header_to: headerTo } })),
    content: { email_rfc822: (await send.message.raw()).toString('utf8') },
  });
  const response = await providerRequest(ctx, transmissionsUrl(service.url), {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      Accept: 'application/json',
      Authorization: apikey,
    },
    body,
  });
  if (response.status >= 400 && response.status < 500) {
    const rejected = errorsOf(response.body).find(error => error?.code === GENERATION_REJECTED);
    if (rejected) {
      const detail = `SparkPost rejected the message: ${rejected.message ?? ''} (${rejected.description ?? ''})`;
      throw new EmailRejectedError(detail, everyRecipient(send, detail));
    }
  }
  expectSuccess(response, 'SparkPost');
  const results = jsonAnswer(response.body, 'SparkPost').results as
    | {
        id?: unknown;
        total_accepted_recipients?: unknown;
        total_rejected_recipients?: unknown;
        rcpt_to_errors?: { message?: string; description?: string }[];
      }
    | undefined;
  const id = results?.id;
  if (typeof id !== 'string' || id.length === 0 || id.length > 255) {
    throw refused(
      'NEXUS_ERR_EMAIL_PROVIDER_BAD_ANSWER',
      'SparkPost answered 2xx without a transmission id (results.id)',
    );
  }
  const accepted = Number(results?.total_accepted_recipients ?? Number.NaN);
  const rejectedCount = Number(results?.total_rejected_recipients ?? 0);
  const why = (Array.isArray(results?.rcpt_to_errors) ? results.rcpt_to_errors : [])
    .map(error => [error?.message, error?.description].filter(Boolean).join(': '))
    .join('; ');
  if (rejectedCount > 0 && (accepted === 0 || rejectedCount >= send.envelope.to.length)) {
    const detail = `SparkPost rejected every recipient of transmission ${id}${why ? `: ${why}` : ''}`;
    throw new EmailRejectedError(detail, everyRecipient(send, detail));
  }
  if (rejectedCount > 0) {
    // SparkPost counts the rejected recipients without naming them: reported, not suppressed.
    ctx.log.warn(
      { transmission: id, rejected: rejectedCount, reason: why.slice(0, 300) },
      'SparkPost rejected some recipients of the mail',
    );
  }
  return { providerMessageId: id };
};

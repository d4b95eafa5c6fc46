import { createHmac } from 'node:crypto';
import { storedCustomHeaders } from '../custom-headers.js';
import type { EmailAddress } from '../email-message.js';
import {
  expectSuccess,
  jsonAnswer,
  providerRequest,
  refused,
  type EmailProvider,
} from './provider.js';

/**
 * A custom email gateway through the Third-Party Messaging API (`Email` provider `Async`, or an
 * email channel's provider `Async`): the `Async` service's entry whose channelId is the mail's
 * domain (case-insensitive) gives the gateway's webhook and its secret. One POST per mail, signed
 * `X-Hub-Signature: sha1=<hex HMAC-SHA1(body, that channel's webhook secret)>`, with
 * `X-B3-TraceId` and the service's `header:` entries, as for SMS (sms-providers.ts `sendAsync`).
 *
 * The body is the hub's design (the guide names an OutgoingEmailMessage model but not its
 * fields), mirroring the SMS one: `{messages: [{id, channelId: <domain>, type: "Email", from,
 * to, cc, bcc, replyTo, subject, text, html, messageId, inReplyTo, references, unsubscribeUrl}]}`
 * with addresses as `{address, name?}`, absent values null. The gateway builds the mail itself:
 * `messageId` is the Message-ID the hub stored (threading and receipts match on it), and
 * `unsubscribeUrl` (campaign mail) is the one-click link for its List-Unsubscribe headers.
 *
 * The answer's `messageId` is the provider's id (2xx without one: NEXUS_ERR_EMAIL_PROVIDER_BAD_ANSWER).
 * 420 and 429 wait without an attempt, 408 and 5xx are retried, other 4xx fail the mail.
 */

const address = (entry: EmailAddress) =>
  entry.name ? { address: entry.address, name: entry.name } : { address: entry.address };

export const sendAsyncEmail: EmailProvider = async (send, ctx) => {
  const service = await ctx.service('Async');
  const domain = send.domain.toLowerCase();
  const data = service?.data as
    { channels?: { channelId: string; webhook: { url: string } }[] } | undefined;
  const secrets = service?.secret as
    { channels?: { channelId: string; webhook: { secret: string } }[] } | undefined;
  const channel = data?.channels?.find(entry => entry.channelId.toLowerCase() === domain);
  const secret = secrets?.channels?.find(entry => entry.channelId.toLowerCase() === domain)?.webhook
    .secret;
  if (!service || !channel || !secret) {
    throw refused(
      'NEXUS_ERR_EMAIL_PROVIDER_NOT_CONFIGURED',
      `the Async service has no channel ${send.domain}`,
    );
  }
  const { mail } = send;
  const body = JSON.stringify({
    messages: [
      {
        id: send.id,
        channelId: send.domain,
        type: 'Email',
        from: address(mail.from),
        to: mail.to.map(address),
        cc: (mail.cc ?? []).map(address),
        bcc: (mail.bcc ?? []).map(address),
        replyTo: mail.replyTo ? address(mail.replyTo) : null,
        subject: mail.subject,
        text: mail.text,
        html: mail.html ?? null,
        messageId: mail.messageId,
        inReplyTo: mail.inReplyTo ?? null,
        references: mail.references ?? [],
        unsubscribeUrl: mail.unsubscribe?.url ?? null,
      },
    ],
  });
  const response = await providerRequest(ctx, channel.webhook.url, {
    method: 'POST',
    headers: {
      ...storedCustomHeaders(service.data, service, ctx.log),
      'Content-Type': 'application/json',
      'X-Hub-Signature': `sha1=${createHmac('sha1', secret).update(body).digest('hex')}`,
      'X-B3-TraceId': send.id.replace(/-/g, ''),
    },
    body,
  });
  expectSuccess(response, 'the Async gateway');
  const messageId = jsonAnswer(response.body, 'the Async gateway').messageId;
  if (typeof messageId !== 'string' || messageId.length === 0 || messageId.length > 255) {
    throw refused(
      'NEXUS_ERR_EMAIL_PROVIDER_BAD_ANSWER',
      'the Async gateway answered 2xx without a messageId',
    );
  }
  return { providerMessageId: messageId };
};

import type { EmailAddress } from '../email-message.js';
import {
  expectSuccess,
  jsonAnswer,
  providerRequest,
  refused,
  type EmailProvider,
  type EmailProviderContext,
  type EmailSend,
} from './provider.js';

/**
 * Genesys Cloud email aggregation (`Email` provider `Portico`; services `PorticoEmail` for the
 * API URL and `PurecloudIDP` for the login URL and OAuth client): a client-credentials token
 * (`POST <login>/oauth/token`, HTTP Basic client id and secret; cached until a minute before it
 * expires, fetched again once on a 401), then the agentless email API
 * `POST <api>/api/v2/conversations/emails/agentless` with `{senderType: "Outbound", fromAddress:
 * {email, name}, toAddresses: [{email, name}], replyToAddress?, subject, textBody, htmlBody?}`.
 * The answer's `id` is the provider's id (its `conversationId` is not kept).
 *
 * Verified against Genesys Cloud's published SDK models (AgentlessEmailSendRequestDto and
 * AgentlessEmailSendResponseDto, EmailAddress {email, name}; senderType one of Outbound, Inbound,
 * Integration) and public Data Action definitions calling that path; not verified: the success
 * status (any 2xx is taken) and whether more than one To recipient is accepted (older SDK
 * versions said one only). The request has no Cc, Bcc or header fields: a mail with Cc or Bcc
 * recipients is refused rather than sent to fewer people.
 *
 * Genesys Cloud builds the MIME itself: the hub's Message-ID, threading headers, one-click
 * unsubscribe headers and DKIM signature do not reach the recipient (the domain is signed by
 * Genesys Cloud, where it is provisioned).
 */

/** Access tokens of the tenants' Genesys Cloud OAuth clients, until shortly before they expire. */
const tokens = new Map<string, { token: string; until: number }>();

async function accessToken(
  send: EmailSend,
  ctx: EmailProviderContext,
  refresh: boolean,
): Promise<string> {
  const idp = await ctx.service('PurecloudIDP');
  const client = idp?.secret as { clientId?: string; clientSecret?: string } | undefined;
  if (!idp?.url || !client?.clientId || !client.clientSecret) {
    throw refused(
      'NEXUS_ERR_EMAIL_PROVIDER_NOT_CONFIGURED',
      'the tenant has no PurecloudIDP service (the OAuth client)',
    );
  }
  const key = `${send.tenant}:${idp.url}:${client.clientId}`;
  const cached = tokens.get(key);
  if (cached && !refresh && cached.until > Date.now()) return cached.token;
  const response = await providerRequest(ctx, `${idp.url.replace(/\/+$/, '')}/oauth/token`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/x-www-form-urlencoded',
      Authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString('base64')}`,
    },
    body: 'grant_type=client_credentials',
  });
  expectSuccess(response, 'the Genesys Cloud login');
  const answer = jsonAnswer(response.body, 'the Genesys Cloud login');
  if (typeof answer.access_token !== 'string' || answer.access_token.length === 0) {
    throw refused(
      'NEXUS_ERR_EMAIL_PROVIDER_BAD_ANSWER',
      'the Genesys Cloud login answered without an access_token',
    );
  }
  const seconds = typeof answer.expires_in === 'number' ? answer.expires_in : 3_600;
  tokens.set(key, {
    token: answer.access_token,
    until: Date.now() + Math.max(0, seconds - 60) * 1000,
  });
  return answer.access_token;
}

const emailAddress = (entry: EmailAddress) =>
  entry.name ? { email: entry.address, name: entry.name } : { email: entry.address };

export const sendPorticoEmail: EmailProvider = async (send, ctx) => {
  const api = await ctx.service('PorticoEmail');
  if (!api?.url) {
    throw refused(
      'NEXUS_ERR_EMAIL_PROVIDER_NOT_CONFIGURED',
      'the tenant has no PorticoEmail service',
    );
  }
  const { mail } = send;
  if (mail.cc?.length || mail.bcc?.length) {
    throw refused(
      'NEXUS_ERR_EMAIL_PROVIDER_REFUSED',
      "Genesys Cloud's agentless email API has no Cc or Bcc recipients",
    );
  }
  const body = JSON.stringify({
    senderType: 'Outbound',
    fromAddress: emailAddress(mail.from),
    toAddresses: mail.to.map(emailAddress),
    ...(mail.replyTo ? { replyToAddress: emailAddress(mail.replyTo) } : {}),
    subject: mail.subject,
    textBody: mail.text,
    ...(mail.html ? { htmlBody: mail.html } : {}),
  });
  const url = `${api.url.replace(/\/+$/, '')}/api/v2/conversations/emails/agentless`;
  const post = async (refresh: boolean) =>
    providerRequest(ctx, url, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        Authorization: `Bearer ${await accessToken(send, ctx, refresh)}`,
      },
      body,
    });
  let response = await post(false);
  if (response.status === 401) response = await post(true);
  expectSuccess(response, 'Genesys Cloud');
  const id = jsonAnswer(response.body, 'Genesys Cloud').id;
  if (typeof id !== 'string' || id.length === 0 || id.length > 255) {
    throw refused(
      'NEXUS_ERR_EMAIL_PROVIDER_BAD_ANSWER',
      'Genesys Cloud answered 2xx without an id',
    );
  }
  return { providerMessageId: id };
};

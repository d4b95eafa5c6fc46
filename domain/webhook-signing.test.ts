import { createHmac, randomBytes } from 'node:crypto';
import { verify as verifyGithubStyle } from '@octokit/webhooks-methods';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { signatureHeaders } from './webhook-signing.js';

const body = JSON.stringify({ operationId: 'op-1', data: { entities: [{ event: 'STARTED' }] } });

describe('webhook signatures', () => {
  const secret = `whsec_${randomBytes(32).toString('base64')}`;
  const now = Math.floor(Date.now() / 1000);

  it('verifies with the public standardwebhooks library', () => {
    const headers = signatureHeaders({ id: 'msg_1', timestamp: now, body, secrets: [secret] });
    const payload = new Webhook(secret).verify(body, headers);
    expect(payload).toEqual(JSON.parse(body));
    // A tampered body fails.
    expect(() => new Webhook(secret).verify(`${body} `, headers)).toThrow();
  });

  it('verifies X-Hub-Signature-256 with @octokit/webhooks-methods and X-Hub-Signature with a plain HMAC-SHA1', async () => {
    const headers = signatureHeaders({ id: 'msg_2', timestamp: now, body, secrets: [secret] });
    expect(await verifyGithubStyle(secret, body, headers['X-Hub-Signature-256'] as string)).toBe(
      true,
    );
    expect(
      await verifyGithubStyle('another secret', body, headers['X-Hub-Signature-256'] as string),
    ).toBe(false);
    expect(headers['X-Hub-Signature']).toBe(
      `sha1=${createHmac('sha1', secret).update(body).digest('hex')}`,
    );
  });

  it('signs with every secret of a rotation, so receivers with either key verify', () => {
    const next = `whsec_${randomBytes(32).toString('base64')}`;
    const headers = signatureHeaders({
      id: 'msg_3',
      timestamp: now,
      body,
      secrets: [next, secret],
    });
    expect(headers['webhook-signature']?.split(' ')).toHaveLength(2);
    expect(() => new Webhook(secret).verify(body, headers)).not.toThrow();
    expect(() => new Webhook(next).verify(body, headers)).not.toThrow();
    expect(() =>
      new Webhook(`whsec_${randomBytes(32).toString('base64')}`).verify(body, headers),
    ).toThrow();
  });

  it('sends only the schemes asked for, and refuses ids with dots or no secret', () => {
    expect(
      Object.keys(
        signatureHeaders({
          id: 'm',
          timestamp: now,
          body,
          secrets: [secret],
          schemes: ['x-hub-signature'],
        }),
      ),
    ).toEqual(['X-Hub-Signature']);
    expect(() => signatureHeaders({ id: 'a.b', timestamp: now, body, secrets: [secret] })).toThrow(
      /must not contain/,
    );
    expect(() => signatureHeaders({ id: 'm', timestamp: now, body, secrets: [] })).toThrow(
      /at least one secret/,
    );
  });
});

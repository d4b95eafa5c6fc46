import { generateKeyPairSync } from 'node:crypto';
import { authenticate } from 'mailauth';
import { describe, expect, it } from 'vitest';
import { buildEmail, type EmailToBuild } from './email-message.js';

/** Keys for example.com, published through the resolver mailauth's verifier queries. */
function dkimDomain(type: 'rsa') {
  const pair =
    type === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ed25519');
  const spki = pair.publicKey.export({ type: 'spki', format: 'der' });
  const publicKey =
    type === 'rsa' ? spki.toString('base64') : spki.subarray(-32).toString('base64');
  return {
    key: {
      domainName: 'example.com',
      keySelector: 's1',
      privateKey: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    },
    resolver: async (name: string, rr: string) => {
      if (rr === 'TXT' && name === 's1._domainkey.example.com') {
        return [[`v=DKIM1; k=${type}; p=${publicKey}`]];
      }
      const error = new Error(`no ${rr} for ${name}`) as Error & { code: string };
      error.code = 'ENOTFOUND';
      throw error;
    },
  };
}

const mail: EmailToBuild = {
  messageId: '<c0ffee.1@mail.example.com>',
  from: { address: 'news@example.com', name: 'Zoë from Example' },
  to: [{ address: 'customer@example.org', name: 'Ana Pérez' }],
  cc: [{ address: 'copy@example.org' }],
  bcc: [{ address: 'hidden@example.org' }],
  subject: 'Ihre Bestellung — ready ✓',
  text: 'Plain text, UTF-8: żółć',
  html: '<p>HTML <b>part</b></p>',
  inReplyTo: '<prev.2@example.org>',
  references: ['<first.1@example.org>', '<prev.2@example.org>'],
  unsubscribe: { url: 'https://hub.example.com/u/abc', mailto: 'unsub@example.com' },
};

/** A header's value, unfolded. */
const headerOf = (raw: Buffer, name: string) =>
  new RegExp(`^${name}: (.*(?:\\r\\n[ \\t].*)*)`, 'mi')
    .exec(raw.toString('utf8'))?.[1]
    ?.replace(/\r\n[ \t]+/g, ' ');

describe('buildEmail', () => {
  it('builds UTF-8 text and HTML parts with our Message-ID, threading and one-click unsubscribe', async () => {
    const { raw, envelope } = await buildEmail(mail);
    const text = raw.toString('utf8');
    expect(headerOf(raw, 'Message-ID')).toBe('<c0ffee.1@mail.example.com>');
    expect(headerOf(raw, 'In-Reply-To')).toBe('<prev.2@example.org>');
    expect(headerOf(raw, 'References')).toBe('<first.1@example.org> <prev.2@example.org>');
    expect(headerOf(raw, 'Subject')).toMatch(/^=\?UTF-8\?/);
    expect(headerOf(raw, 'List-Unsubscribe')).toBe(
      '<https://hub.example.com/u/abc>, <mailto:unsub@example.com>',
    );
    expect(headerOf(raw, 'List-Unsubscribe-Post')).toBe('List-Unsubscribe=One-Click');
    expect(text).toMatch(/Content-Type: multipart\/alternative/);
    expect(text).toMatch(/Content-Type: text\/plain; charset=utf-8/);
    expect(text).toMatch(/Content-Type: text\/html; charset=utf-8/);
    expect(text).not.toMatch(/^Bcc:/im);
    expect(text).not.toContain('hidden@example.org');
    expect(envelope).toEqual({
      from: 'news@example.com',
      to: ['customer@example.org', 'copy@example.org', 'hidden@example.org'],
    });
    expect(text.split('\n').every(line => line === '' || line.endsWith('\r'))).toBe(true);
  });

  it('signs with the domain key so that a DKIM verifier passes it', async () => {
    for (const type of ['rsa'] as const) {
      const domain = dkimDomain(type);
      const { raw } = await buildEmail(mail, domain.key);
      const result = await authenticate(raw, {
        resolver: domain.resolver,
        trustReceived: false,
        disableArc: true,
        disableDmarc: true,
        disableBimi: true,
        sender: 'news@example.com',
        ip: '192.0.2.1',
        helo: 'mail.example.com',
        mta: 'mx.example.org',
      });
      const signature = result.dkim.results[0];
      expect(signature?.status.result, `${type}: ${JSON.stringify(signature?.status)}`).toBe(
        'pass',
      );
      expect(signature?.signingDomain).toBe('example.com');
      // A changed body no longer verifies.
      const tampered = Buffer.from(raw.toString('utf8').replace('Plain text', 'Plain t3xt'));
      const failed = await authenticate(tampered, {
        resolver: domain.resolver,
        disableArc: true,
        disableDmarc: true,
        disableBimi: true,
        ip: '192.0.2.1',
        helo: 'mail.example.com',
        mta: 'mx.example.org',
        sender: 'news@example.com',
      });
      expect(failed.dkim.results[0]?.status.result).not.toBe('pass');
    }
  });

  it('refuses a line break in any header value, or a bad address or id, with NEXUS_ERR_EMAIL_INVALID', async () => {
    const bad: Partial<EmailToBuild>[] = [
      { subject: 'Hello\r\nBcc: victim@example.net' },
      { subject: 'Hello\nX-Injected: 1' },
      { from: { address: 'news@example.com', name: 'Zoë\r\nBcc: victim@example.net' } },
      { to: [{ address: 'customer@example.org\r\nBcc: victim@example.net' }] },
      { to: [{ address: 'not an address' }] },
      { to: [] },
      { cc: [{ address: 'a@b' }] },
      { messageId: 'no-brackets@example.com' },
      { inReplyTo: '<x@y>\r\nBcc: victim@example.net' },
      { references: ['<ok@example.org>', 'bad'] },
      { unsubscribe: { url: 'http://hub.example.com/u/abc' } },
      { unsubscribe: { url: 'https://hub.example.com/u\r\nBcc: v@example.net' } },
    ];
    for (const change of bad) {
      await expect(
        buildEmail({ ...mail, ...change }),
        JSON.stringify(change),
      ).rejects.toMatchObject({
        code: 'NEXUS_ERR_EMAIL_INVALID',
        name: 'UnrecoverableError',
      });
    }
  });
});

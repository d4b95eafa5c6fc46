import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseDeliveryReport, parseFieldBlock } from './email-dsn.js';

const fixture = (name: string) =>
  readFileSync(new URL(`../test/fixtures/dsn/${name}`, import.meta.url));

const ORIGINAL = '<6f1c0a8e-3b2d-4e5f-9a1b-2c3d4e5f6a7b@news.example.com>';

describe('parseFieldBlock', () => {
  it('reads RFC 822 fields: names case-insensitive, continuation lines unfolded, the first of a repeat kept', () => {
    const fields = parseFieldBlock(
      'Final-Recipient: rfc822; a@example.com\r\nDIAGNOSTIC-CODE: smtp; 550 5.1.1 no\r\n  such user\r\n\tat all\r\nAction: failed\r\naction: delayed\r\nnot a field\r\n',
    );
    expect(fields.get('final-recipient')).toBe('rfc822; a@example.com');
    expect(fields.get('diagnostic-code')).toBe('smtp; 550 5.1.1 no such user at all');
    expect(fields.get('action')).toBe('failed');
    expect(fields.size).toBe(3);
  });
});

describe('parseDeliveryReport', () => {
  it("reads OpenSMTPD's report (multipart/mixed with a delivery-status part), refining its generic 5.0.0 from the notification line", async () => {
    const report = await parseDeliveryReport(fixture('opensmtpd-failed.eml'));
    expect(report?.form).toBe('delivery-status');
    expect(report?.messageId).toMatch(/^<[^>]+>$/);
    expect(report?.originalMessageId).toMatch(/^<[0-9a-f-]{36}@news\.example\.com>$/);
    expect(report?.recipients).toEqual([
      {
        finalRecipient: 'gone@customer.example',
        originalRecipient: undefined,
        action: 'failed',
        status: '5.1.1',
        diagnostic: '550 5.1.1 no such user here',
        smtpCode: 550,
        remoteMta: undefined,
      },
    ]);
  });

  it("reads RFC 3464 multipart/report: every recipient's fields, folded Diagnostic-Code, the attached message's Message-ID", async () => {
    const report = await parseDeliveryReport(fixture('postfix-multipart-report.eml'));
    expect(report).toEqual({
      form: 'delivery-status',
      messageId: '<4QxY2z1Lk9z9sVb.1764687603@mx1.customer.example>',
      originalMessageId: ORIGINAL,
      reportingMta: 'mx1.customer.example',
      recipients: [
        {
          finalRecipient: 'gone@customer.example',
          originalRecipient: 'gone@customer.example',
          action: 'failed',
          status: '5.1.1',
          diagnostic:
            '550 5.1.1 <gone@customer.example>: Recipient address rejected: User unknown in local recipient table',
          smtpCode: 550,
          remoteMta: 'mailstore.customer.example',
        },
        {
          finalRecipient: 'full@customer.example',
          originalRecipient: 'full@customer.example',
          action: 'failed',
          status: '5.2.2',
          diagnostic: '552 5.2.2 <full@customer.example>: Mailbox full',
          smtpCode: 552,
          remoteMta: 'mailstore.customer.example',
        },
      ],
    });
  });

  it('reads delayed and delivered/relayed actions, and the Message-ID of text/rfc822-headers', async () => {
    const delayed = await parseDeliveryReport(fixture('delayed-rfc822-headers.eml'));
    expect(delayed?.originalMessageId).toBe(ORIGINAL);
    expect(delayed?.recipients.map(r => [r.finalRecipient, r.action, r.status])).toEqual([
      ['slow@customer.example', 'delayed', '4.4.7'],
    ]);
    const delivered = await parseDeliveryReport(fixture('delivered-relayed.eml'));
    expect(delivered?.originalMessageId).toBe(ORIGINAL);
    expect(delivered?.recipients.map(r => [r.finalRecipient, r.action, r.status])).toEqual([
      ['ann@customer.example', 'delivered', '2.0.0'],
      ['list@customer.example', 'relayed', '2.0.0'],
    ]);
  });

  it("reads a multipart/mixed report without a delivery-status part from its text; the attached original's addresses and numbers are not recipients", async () => {
    const report = await parseDeliveryReport(fixture('mixed-plain-text.eml'));
    expect(report?.form).toBe('text');
    expect(report?.originalMessageId).toBe(ORIGINAL);
    expect(report?.recipients).toEqual([
      {
        finalRecipient: 'gone@customer.example',
        originalRecipient: undefined,
        action: 'failed',
        status: '5.1.1',
        diagnostic: "'550 5.1.1 RESOLVER.ADR.RecipNotFound; not found'",
        smtpCode: 550,
        remoteMta: undefined,
      },
    ]);
  });

  it('reads a plain-text (qmail) report: the address on the line above the status, the Message-ID of the quoted original', async () => {
    const report = await parseDeliveryReport(fixture('qmail-plain.eml'));
    expect(report?.form).toBe('text');
    expect(report?.originalMessageId).toBe(ORIGINAL);
    expect(report?.recipients.map(r => [r.finalRecipient, r.action, r.status, r.smtpCode])).toEqual(
      [['nobody@customer.example', 'failed', '5.1.1', 550]],
    );
  });

  it('answers undefined for an auto-reply to the return path and for mail that names no status', async () => {
    expect(await parseDeliveryReport(fixture('auto-reply.eml'))).toBeUndefined();
    expect(
      await parseDeliveryReport(
        'From: MAILER-DAEMON@mx.example.org\r\nSubject: Undelivered Mail\r\n\r\nSomething went wrong.\r\n',
      ),
    ).toBeUndefined();
    expect(await parseDeliveryReport('not a mail at all')).toBeUndefined();
  });

  it('skips delivery-status blocks without a recipient or with an unknown action', async () => {
    const raw = [
      'From: MAILER-DAEMON@mx.example.org',
      'Subject: Delivery Status Notification',
      'MIME-Version: 1.0',
      'Content-Type: multipart/report; report-type=delivery-status; boundary="b"',
      '',
      '--b',
      'Content-Type: text/plain',
      '',
      'Report.',
      '--b',
      'Content-Type: message/delivery-status',
      '',
      'Reporting-MTA: dns; mx.example.org',
      '',
      'Action: failed',
      'Status: 5.1.1',
      '',
      'Final-Recipient: rfc822; <A@Example.ORG>',
      'Action: exploded',
      'Status: 5.1.1',
      '',
      'Final-Recipient: rfc822; <B@Example.ORG>',
      'Action: Failed (permanent)',
      'Status: 5.7.1 (delivery not authorized)',
      '',
      '--b--',
      '',
    ].join('\r\n');
    const report = await parseDeliveryReport(raw);
    expect(report?.originalMessageId).toBeUndefined();
    expect(report?.recipients.map(r => [r.finalRecipient, r.action, r.status])).toEqual([
      ['b@example.org', 'failed', '5.7.1'],
    ]);
  });
});

/**
 * The bare reference for campaign mail: a BullMQ worker (the same concurrency as the hub's) that
 * hands each job's mail to a pooled nodemailer SMTP transport (the same connections and mails per
 * connection as the hub's `SmtpEmail` pool), which builds the MIME text and sends it. The mail
 * carries what the hub's does (its Message-ID, the signed one-click unsubscribe headers, the VERP
 * return path; DKIM when the bench signs both). No PostgreSQL, no status, no suppression list, no
 * rate limit: what sending costs before it is recorded.
 */
import { createHmac } from 'node:crypto';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import nodemailer from 'nodemailer';

const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = process.env.BASELINE_PREFIX ?? '{baseline}';
const concurrency = Number(process.env.BASELINE_CONCURRENCY ?? 50);
const dkimKey = process.env.BASELINE_DKIM_KEY;
const secret = 'baseline-secret';

const transport = nodemailer.createTransport({
  pool: true,
  host: '127.0.0.1',
  port: Number(process.env.BASELINE_SMTP_PORT),
  secure: false,
  maxConnections: Number(process.env.BASELINE_CONNECTIONS ?? 5),
  maxMessages: Number(process.env.BASELINE_MAX_MESSAGES ?? 100),
});

export interface BaselineMail {
  id: string;
  tenant: string;
  domain: string;
  from: { address: string; name: string };
  to: string;
  subject: string;
  text: string;
  html: string;
}

const worker = new Worker(
  'email',
  async job => {
    const mail = job.data as BaselineMail;
    const sig = createHmac('sha256', secret)
      .update(`email-unsubscribe:${mail.tenant}:${mail.id}`)
      .digest('hex')
      .slice(0, 32);
    const unsubscribe = `https://hub.bench.example/nexus/v3/email/unsubscribe/${mail.tenant}/${mail.id}?sig=${sig}`;
    await transport.sendMail({
      messageId: `<${mail.id}@${mail.domain}>`,
      from: mail.from,
      to: mail.to,
      subject: mail.subject,
      text: mail.text,
      html: mail.html,
      headers: {
        'List-Unsubscribe': `<${unsubscribe}>`,
        'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
      },
      envelope: { from: `bounces+${mail.id}@bounces.bench.example`, to: [mail.to] },
      ...(dkimKey
        ? { dkim: { domainName: mail.domain, keySelector: 'bench', privateKey: dkimKey } }
        : {}),
    });
  },
  { connection: new Redis(redisUrl, { maxRetriesPerRequest: null }), prefix, concurrency },
);
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  void worker.close().then(() => {
    transport.close();
    process.exit(0);
  });
});

/**
 * The bare reference for webhook delivery: a BullMQ worker (the same concurrency as the hub's)
 * that POSTs each job's body, HMAC-SHA256-signed, on a keep-alive agent. No PostgreSQL, no
 * delivery log, no retries schedule: what delivery costs before it is made durable.
 */
import { createHmac } from 'node:crypto';
import { Agent, request } from 'node:http';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';

const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = process.env.BASELINE_PREFIX ?? '{baseline}';
const target = process.env.BASELINE_TARGET ?? 'http://127.0.0.1:9/';
const concurrency = Number(process.env.BASELINE_CONCURRENCY ?? 50);
// As the hub's egress agent: idle connections kept for every request in flight.
const agent = new Agent({ keepAlive: true, maxFreeSockets: concurrency });

const post = (body: string, id: string) =>
  new Promise<number>((resolve, reject) => {
    const req = request(
      target,
      {
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/json',
          'webhook-id': id,
          'x-hub-signature-256': `sha256=${createHmac('sha256', 'baseline-secret').update(body).digest('hex')}`,
        },
      },
      res => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });

const worker = new Worker(
  'webhooks',
  async job => {
    const status = await post(JSON.stringify(job.data), job.id ?? '');
    if (status < 200 || status >= 300) throw new Error(`answered ${status}`);
  },
  { connection: new Redis(redisUrl, { maxRetriesPerRequest: null }), prefix, concurrency },
);
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  void worker.close().then(() => process.exit(0));
});

/**
 * The bare reference pipeline's worker: BullMQ worker (concurrency 50) → one single-row INSERT →
 * Redis publish → socket.io room emit (through the Redis emitter).
 */
import { Emitter } from '@socket.io/redis-emitter';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';

const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = process.env.BASELINE_PREFIX ?? '{baseline}';
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 20 });
await pool.query(
  'CREATE TABLE IF NOT EXISTS baseline_messages (id bigserial PRIMARY KEY, session_id text, text text, client_message_id text, created_at timestamptz DEFAULT now())',
);
const emitter = new Emitter(new Redis(redisUrl), { key: `${prefix}:socket.io` });
const worker = new Worker(
  'messages',
  async job => {
    const { sessionId, text, clientMessageId } = job.data as Record<string, string>;
    const { rows } = await pool.query<{ id: string }>(
      'INSERT INTO baseline_messages (session_id, text, client_message_id) VALUES ($1, $2, $3) RETURNING id',
      [sessionId, text, clientMessageId],
    );
    emitter
      .to(sessionId as string)
      .emit('message', { id: rows[0]?.id, sessionId, text, clientMessageId });
  },
  { connection: new Redis(redisUrl, { maxRetriesPerRequest: null }), prefix, concurrency: 50 },
);
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  void worker
    .close()
    .then(() => pool.end())
    .then(() => process.exit(0));
});

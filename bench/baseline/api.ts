/**
 * The bare reference pipeline's API process: Express 5 POST → await queue.add, plus a socket.io
 * server (Redis adapter) where agents join session rooms. No auth, no validation, no routing.
 */
import { createServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { Queue } from 'bullmq';
import express from 'express';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';

const port = Number(process.env.PORT);
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = process.env.BASELINE_PREFIX ?? '{baseline}';

const queue = new Queue('messages', {
  connection: new Redis(redisUrl, { maxRetriesPerRequest: null }),
  prefix,
});
const app = express();
app.use(express.json());
app.post('/messages', async (req, res) => {
  const { sessionId, text, clientMessageId } = req.body as Record<string, string>;
  await queue.add(
    'm',
    { sessionId, text, clientMessageId, receivedAt: Date.now() },
    { removeOnComplete: 1000, removeOnFail: 1000 },
  );
  res.status(202).json({ ok: true });
});
const server = createServer(app);
const io = new Server(server, { serveClient: false });
io.adapter(createAdapter(new Redis(redisUrl), new Redis(redisUrl), { key: `${prefix}:socket.io` }));
io.on('connection', socket => {
  socket.on('join', (sessions: string[], ack?: () => void) => {
    void socket.join(sessions);
    ack?.();
  });
});
server.listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => {
  void io.close();
  void queue.close().then(() => process.exit(0));
});

import type { Server } from 'node:http';
import { buildApp } from '../api/app.js';
import { attachRealtime } from '../api/realtime/index.js';
import { routingQueueStats } from '../db/routing/stats.js';
import { setRoutingStatsSource } from '../lib/metrics.js';
import type { Core } from './bootstrap.js';

/**
 * Opens the API port with the sockets on it; its shutdown step closes the sockets, stops
 * accepting and lets in-flight requests finish.
 */
export async function serveApi(core: Core): Promise<Server> {
  const app = buildApp({
    config: core.config,
    log: core.log,
    db: core.db,
    queues: core.queues,
    redis: core.redis,
    bus: core.bus,
    startedAt: core.startedAt,
    evictionPolicy: core.evictionPolicy,
  });
  const server = await new Promise<Server>((resolve, reject) => {
    const listening = app.listen(core.config.http.port, core.config.http.host, error =>
      error ? reject(error) : resolve(listening),
    );
  });
  const realtime = attachRealtime(server, {
    config: core.config,
    db: core.db,
    log: core.log,
    chat: app.chat,
    auth: app.auth,
  });
  // Routing queue gauges, read from PostgreSQL at scrape time (every API replica reports the
  // same figures: aggregate with max() in Prometheus).
  setRoutingStatsSource(() => routingQueueStats(core.db));
  core.log.info({ port: core.config.http.port }, 'api listening');
  // Closing socket.io closes the HTTP server too, after in-flight requests.
  core.shutdown.add('http server and sockets', () => realtime.close());
  return server;
}

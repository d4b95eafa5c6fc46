import type { Server } from 'node:http';
import { buildApp } from '../api/app.js';
import type { Core } from './bootstrap.js';

/** Opens the API port; its shutdown step stops accepting and lets in-flight requests finish. */
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
  core.log.info({ port: core.config.http.port }, 'api listening');
  core.shutdown.add('http server', () => new Promise(resolve => server.close(resolve)));
  return server;
}

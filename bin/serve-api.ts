import type { Server } from 'node:http';
import { buildApp } from '../api/app.js';
import { inboundMailHook } from '../api/email/inbound-mime.js';
import { startSmtpListener } from '../api/email/smtp-listener.js';
import { attachRealtime } from '../api/realtime/index.js';
import { countSuppressed } from '../db/queries/email-consent.js';
import { routingQueueStats } from '../db/routing/stats.js';
import { setRoutingStatsSource, setSuppressionSource } from '../lib/metrics.js';
import { enqueueContext } from '../queues/work.js';
import type { Core } from './bootstrap.js';

/**
 * Opens the API port with the sockets on it, and the SMTP listener for bounce reports and
 * inbound mail when `NEXUS_EMAIL_SMTP_PORT` is set; their shutdown steps stop accepting and let
 * what is in flight finish.
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
    bus: core.bus,
  });
  // Routing queue gauges, read from PostgreSQL at scrape time (every API replica reports the
  // same figures: aggregate with max() in Prometheus).
  setRoutingStatsSource(() => routingQueueStats(core.db));
  setSuppressionSource(() => countSuppressed(core.db));
  core.log.info({ port: core.config.http.port }, 'api listening');
  // Closing socket.io closes the HTTP server too, after in-flight requests.
  core.shutdown.add('http server and sockets', () => realtime.close());
  if (core.config.email.smtpPort !== undefined) {
    const smtp = await startSmtpListener({
      port: core.config.email.smtpPort,
      host: core.config.http.host,
      db: core.db,
      log: core.log,
      bounceDomain: core.config.email.bounceDomain,
      inbound: inboundMailHook({
        db: core.db,
        enqueue: enqueueContext({ db: core.db, queues: core.queues, log: core.log }, core.config),
        log: core.log,
        attachmentMaxBytes: core.config.email.attachmentMaxBytes,
      }),
    });
    core.shutdown.add('smtp listener', () => smtp.close());
  }
  return server;
}

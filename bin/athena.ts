import type { Server } from 'node:http';
import { buildAthenaApp } from '../athena/api/app.js';
import { NexusClient } from '../athena/nexus-client.js';
import { createConnectorProcessor } from '../athena/worker/connector.js';
import { ConfigError, loadAthenaConfig, type AthenaConfig } from '../lib/config.js';
import { EgressGuard } from '../lib/egress.js';
import { SecretBox } from '../lib/secrets.js';
import { enqueueContext } from '../queues/work.js';
import { bootCore } from './bootstrap.js';
import { runWorkers } from './run-workers.js';

/**
 * `npm run athena`: the AI connector. By default one process serves its API (the webhook the
 * hub delivers to, the probes) and runs its `ai-connector` worker; `--role=api` or
 * `--role=worker` runs one part, so each scales on its own.
 */
const roleArg = process.argv.find(arg => arg.startsWith('--role='))?.slice('--role='.length);
if (roleArg !== undefined && !['api', 'worker', 'all'].includes(roleArg)) {
  process.stderr.write(`--role must be api, worker or all (got ${roleArg})\n`);
  process.exit(1);
}
const role = (roleArg ?? 'all') as 'api' | 'worker' | 'all';

let athena: AthenaConfig;
try {
  athena = loadAthenaConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`${error.code}: ${error.message}\n`);
  process.exit(1);
}
for (const warning of athena.hub.warnings.filter(line => line.startsWith('ATHENA_'))) {
  process.stderr.write(`warning: ${warning}\n`);
}

const core = await bootCore('athena', athena.hub);
const nexus = new NexusClient(athena.nexus, core.log);
try {
  if (role !== 'worker') {
    const app = buildAthenaApp({
      config: athena,
      log: core.log,
      db: core.db,
      redis: core.redis,
      nexus,
      enqueue: enqueueContext(core, core.config),
      startedAt: core.startedAt,
    });
    const server = await new Promise<Server>((resolve, reject) => {
      const listening = app.listen(core.config.http.port, core.config.http.host, error =>
        error ? reject(error) : resolve(listening),
      );
    });
    core.log.info(
      { port: core.config.http.port, prefixes: athena.apiPrefixes },
      'ai connector listening',
    );
    core.shutdown.add(
      'http server',
      () => new Promise<void>(resolve => server.close(() => resolve())),
    );
  }
  if (role !== 'api') {
    const guard = new EgressGuard(core.config.egressAllow);
    await runWorkers(core, ['ai-connector'], {
      'ai-connector': createConnectorProcessor({
        db: core.db,
        nexus,
        secrets: new SecretBox(core.config.secretKey, core.config.previousSecretKeys),
        guard,
        timeoutMs: athena.nexus.timeoutMs,
      }),
    });
    core.shutdown.add('egress guard', () => Promise.resolve(guard.close()));
  }
} catch (error) {
  core.log.fatal({ err: error }, (error as Error).message);
  await core.shutdown.run('start-up failed');
  await core.close();
  process.exit(1);
}
core.shutdown.add('connections', () => core.close());

import { parseQueuesFlag } from '../workers/runtime.js';
import { bootCore } from './bootstrap.js';
import { runWorkers } from './run-workers.js';
import { serveApi } from './serve-api.js';

/** `npm start`: migrations, the API and all workers in one process (the laptop mode). */
const core = await bootCore('all');
try {
  await serveApi(core);
  await runWorkers(core, parseQueuesFlag(process.argv.slice(2)) ?? core.config.workers.queues);
} catch (error) {
  core.log.fatal({ err: error }, (error as Error).message);
  await core.shutdown.run('start-up failed');
  await core.close();
  process.exit(1);
}
core.shutdown.add('connections', () => core.close());

import { parseQueuesFlag } from '../workers/runtime.js';
import { bootCore } from './bootstrap.js';
import { runWorkers } from './run-workers.js';

/** `npm run worker [-- --queues inbound,webhooks]`: the workers alone, for all queues or a subset. */
const core = await bootCore('worker');
try {
  await runWorkers(core, parseQueuesFlag(process.argv.slice(2)) ?? core.config.workers.queues);
} catch (error) {
  core.log.fatal({ err: error }, (error as Error).message);
  await core.close();
  process.exit(1);
}
core.shutdown.add('connections', () => core.close());

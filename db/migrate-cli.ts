import { loadConfig } from '../lib/config.js';
import { createLogger } from '../lib/logger.js';
import { ensureDatabase, migrate } from './migrate.js';

/** `npm run migrate`: applies pending migrations and exits. */
const config = loadConfig();
const log = createLogger(config.logLevel);
try {
  await ensureDatabase(config.db.url, log);
  const applied = await migrate(config.db.url, log);
  log.info({ applied }, applied.length ? 'migrations applied' : 'database is up to date');
} catch (error) {
  log.fatal({ err: error }, 'migration failed');
  process.exitCode = 1;
}

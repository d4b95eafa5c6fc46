import { loadConfig } from '../lib/config.js';
import { createLogger } from '../lib/logger.js';
import { ensureDatabase, migrate } from './migrate.js';
import { createDbPool } from './pool.js';

/** `npm run migrate`: applies pending migrations and exits. */
const config = loadConfig();
const log = createLogger(config.logLevel);
try {
  await ensureDatabase(config.db.url, log);
  const pool = await createDbPool(config.db, log);
  const applied = await migrate(pool, log);
  log.info({ applied }, applied.length ? 'migrations applied' : 'database is up to date');
  await pool.end();
} catch (error) {
  log.fatal({ err: error }, 'migration failed');
  process.exitCode = 1;
}

import { loadConfig } from '../lib/config.js';
import { createLogger } from '../lib/logger.js';
import { SecretBox } from '../lib/secrets.js';
import { createDbPool } from './pool.js';
import { rotateSecrets } from './rotate-secrets.js';

/**
 * `npm run rotate-secrets`: re-seals every stored secret with NEXUS_SECRET_KEY. Run it after
 * deploying a new key with the old one in NEXUS_SECRET_KEYS_PREVIOUS; then drop the old key.
 */
const config = loadConfig();
const log = createLogger(config.logLevel);
const db = await createDbPool(config.db, log);
try {
  await rotateSecrets(db, new SecretBox(config.secretKey, config.previousSecretKeys), log);
} catch (error) {
  log.fatal({ err: error }, 'secret rotation failed');
  process.exitCode = 1;
} finally {
  await db.end();
}

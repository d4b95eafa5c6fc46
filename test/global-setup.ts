import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import pg from 'pg';
import { migrate } from '../db/migrate.js';
import { createLogger } from '../lib/logger.js';
import { BEARERBOX, SMSBOX } from './helpers/kannel.js';
import { ADMIN_DATABASE_URL, TEMPLATE_DATABASE, databaseUrl } from './helpers/services.js';

/** Builds the migrated template database that every test file clones (test/helpers/harness.ts). */
export default async function setup(): Promise<() => Promise<void>> {
  ensureKannel();
  const admin = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  await admin.connect();
  try {
    await dropTestDatabases(admin);
    await admin.query(`DROP DATABASE IF EXISTS ${TEMPLATE_DATABASE} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${TEMPLATE_DATABASE}`);
  } finally {
    await admin.end();
  }
  await migrate(databaseUrl(TEMPLATE_DATABASE), createLogger('silent'));
  return async () => {
    const client = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
    await client.connect();
    await dropTestDatabases(client).finally(() => client.end());
  };
}

async function dropTestDatabases(client: pg.Client): Promise<void> {
  const { rows } = await client.query<{ datname: string }>(
    "SELECT datname FROM pg_database WHERE datname LIKE 'nexus\\_test\\_f\\_%'",
  );
  for (const { datname } of rows) {
    await client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(datname)} WITH (FORCE)`);
  }
}

/**
 * The SMS tests run a real Kannel (Debian's `kannel` package). When it is missing and the tests
 * run as root (CI, a fresh machine), it is installed; otherwise the run stops with what to do.
 */
function ensureKannel(): void {
  if (existsSync(BEARERBOX) && existsSync(SMSBOX)) return;
  if (process.getuid?.() !== 0) {
    throw new Error('the SMS tests need Kannel: run `sudo apt-get install -y kannel`');
  }
  for (const args of [
    ['update', '-qq'],
    ['install', '-y', '-qq', 'kannel'],
  ]) {
    const run = spawnSync('apt-get', args, {
      stdio: 'inherit',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    if (run.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed (Kannel is needed)`);
  }
}

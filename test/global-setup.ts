import pg from 'pg';
import { migrate } from '../db/migrate.js';
import { createLogger } from '../lib/logger.js';
import { ADMIN_DATABASE_URL, TEMPLATE_DATABASE, databaseUrl } from './helpers/services.js';

/** Builds the migrated template database that every test file clones (test/helpers/harness.ts). */
export default async function setup(): Promise<() => Promise<void>> {
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

import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * Where the integration tests find the real services. Defaults are the machine's local
 * PostgreSQL and Redis (see the README); override with the variables below.
 */
export const ADMIN_DATABASE_URL =
  process.env.TEST_ADMIN_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * A test run's databases share its name as a prefix (`nexus_test_<start, Unix seconds>_<random>`),
 * so runs on one machine at the same time (two checkouts, say) leave each other's alone: a run
 * drops its own at the end, and at its start only those of runs that started over
 * {@link STALE_RUN_SECONDS} ago (a run that was killed). The global setup names the run and hands
 * it to the test files (`inject('testRun')`).
 */
const TEST_RUN_PREFIX = 'nexus_test_';
export const STALE_RUN_SECONDS = 6 * 3600;

export const newTestRun = () =>
  `${TEST_RUN_PREFIX}${Math.floor(Date.now() / 1000)}_${randomBytes(3).toString('hex')}`;

/** The migrated database every test database of the run is cloned from. */
export const templateDatabase = (run: string) => `${run}_t`;

/** A new database name of the run. */
export const runDatabase = (run: string) => `${run}_f_${randomBytes(6).toString('hex')}`;

/** When the run that named `database` started (Unix seconds); undefined for other names. */
export function runStartedAt(database: string): number | undefined {
  const match = /^nexus_test_(\d{9,})_[0-9a-f]{6}_/.exec(database);
  return match ? Number(match[1]) : undefined;
}

declare module 'vitest' {
  export interface ProvidedContext {
    testRun: string;
  }
}

export function databaseUrl(name: string): string {
  const url = new URL(ADMIN_DATABASE_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Runs `use` with a client of the admin database, closed afterwards. */
export async function withAdmin<T>(use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { migrate } from '../db/migrate.js';
import { createLogger } from '../lib/logger.js';
import { CHROMIUM, FONT } from './helpers/browser.js';
import { BEARERBOX, SMSBOX } from './helpers/kannel.js';
import { SMTPD } from './helpers/opensmtpd.js';
import { freePort } from './helpers/redis-server.js';
import {
  createTestCertificates,
  redisTopology,
  startRedisDeployment,
  topologyEnv,
  type RedisDeployment,
  type TestCertificates,
} from './helpers/redis-topologies.js';
import {
  STALE_RUN_SECONDS,
  TEST_REDIS_URL,
  databaseUrl,
  newTestRun,
  runStartedAt,
  templateDatabase,
  withAdmin,
} from './helpers/services.js';

/**
 * Names the run, builds its migrated template database (every test file clones it:
 * test/helpers/harness.ts) and drops its databases at the end. Databases that runs killed before
 * their end left behind are dropped once they are old (test/helpers/services.ts).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  ensurePackages();
  buildPages();
  const run = newTestRun();
  project.provide('testRun', run);
  await withAdmin(async admin => {
    await dropDatabases(admin, name => {
      if (name.startsWith(`${run}_`)) return true;
      const startedAt = runStartedAt(name);
      if (startedAt !== undefined) return Date.now() / 1000 - startedAt > STALE_RUN_SECONDS;
      // The names of earlier versions of this setup, which dropped every test database.
      return name === 'nexus_test_template' || /^nexus_test_f_[0-9a-f]{12}$/.test(name);
    });
    await admin.query(`CREATE DATABASE ${templateDatabase(run)}`);
  });
  await migrate(databaseUrl(templateDatabase(run)), createLogger('silent'));
  const stopRedis = await provideRedis(project);
  return async () => {
    await stopRedis();
    await withAdmin(admin => dropDatabases(admin, name => name.startsWith(`${run}_`)));
  };
}

/**
 * The run's Redis: the machine's (`single`), or a cluster or TLS deployment started for the run
 * when the project's `env` (or the environment) sets NEXUS_TEST_REDIS (see
 * test/helpers/redis-topologies.ts). The test files get its variables through
 * `inject('testRedis')`. Returns what stops it and removes its files.
 */
async function provideRedis(project: TestProject): Promise<() => Promise<void>> {
  const topology = redisTopology(
    project.config.env?.NEXUS_TEST_REDIS ?? process.env.NEXUS_TEST_REDIS,
  );
  if (topology === 'single') {
    project.provide('testRedis', {
      topology,
      env: topologyEnv(topology, TEST_REDIS_URL, undefined),
      certificates: undefined,
    });
    return async () => undefined;
  }
  const dir = mkdtempSync(join(tmpdir(), `nexus-redis-${topology}-`));
  let deployment: RedisDeployment | undefined;
  try {
    const certificates: TestCertificates | undefined =
      topology === 'tls' ? createTestCertificates(dir) : undefined;
    deployment = await startRedisDeployment({ topology, ports: freePort, dir, certificates });
    project.provide('testRedis', { topology, env: deployment.env, certificates });
  } catch (error) {
    await deployment?.stop();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const started = deployment;
  return async () => {
    await started.stop();
    rmSync(dir, { recursive: true, force: true });
  };
}

/**
 * The page tests load the built pages (dist/ui): `npm ci` builds them, and so does this setup
 * whenever a source under ui/ is newer than the build, so a test never runs against stale pages.
 */
function buildPages(): void {
  const built = statSync(PAGES_MARKER, { throwIfNoEntry: false })?.mtimeMs ?? 0;
  const sources = readdirSync('ui', { recursive: true, encoding: 'utf8' }).map(
    name => statSync(`ui/${name}`).mtimeMs,
  );
  if (sources.every(time => time <= built)) return;
  const run = spawnSync('npm', ['run', 'build:ui', '--silent'], { stdio: 'inherit' });
  if (run.status !== 0) throw new Error('npm run build:ui failed: the page tests need the pages');
}
const PAGES_MARKER = 'dist/ui/ux/widget.js';

async function dropDatabases(client: pg.Client, which: (name: string) => boolean): Promise<void> {
  const { rows } = await client.query<{ datname: string }>(
    "SELECT datname FROM pg_database WHERE datname LIKE 'nexus\\_test\\_%'",
  );
  for (const { datname } of rows.filter(row => which(row.datname))) {
    await client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(datname)} WITH (FORCE)`);
  }
}

/**
 * The SMS tests run a real Kannel, the SMTP tests a real OpenSMTPD and the page tests a real
 * Chromium with a font to draw text (Debian's `kannel`, `opensmtpd`, `chromium` and
 * `fonts-dejavu-core` packages); the Redis tests their own redis-server, a cluster made with
 * redis-cli and a TLS server with an openssl test CA (`redis-server`, `redis-tools`, `openssl`). What is missing is installed when the tests run as root (CI, a
 * fresh machine); otherwise the run stops with what to do.
 */
function ensurePackages(): void {
  const missing = [
    ...(existsSync(BEARERBOX) && existsSync(SMSBOX) ? [] : ['kannel']),
    ...(existsSync(SMTPD) ? [] : ['opensmtpd']),
    ...(existsSync(CHROMIUM) ? [] : ['chromium']),
    ...(existsSync(FONT) ? [] : ['fonts-dejavu-core']),
    // Private servers, the cluster and TLS topologies (test/helpers/redis-topologies.ts).
    ...(existsSync('/usr/bin/redis-server') ? [] : ['redis-server']),
    ...(existsSync('/usr/bin/redis-cli') ? [] : ['redis-tools']),
    ...(existsSync('/usr/bin/openssl') ? [] : ['openssl']),
  ];
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    throw new Error(
      `the tests need ${missing.join(' and ')}: run \`sudo apt-get install -y ${missing.join(' ')}\``,
    );
  }
  for (const args of [
    ['update', '-qq'],
    ['install', '-y', '-qq', ...missing],
  ]) {
    const run = spawnSync('apt-get', args, {
      stdio: 'inherit',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    if (run.status !== 0) {
      throw new Error(`apt-get ${args.join(' ')} failed (${missing.join(' and ')} needed)`);
    }
  }
}

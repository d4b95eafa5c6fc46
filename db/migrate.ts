import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { AppError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { databaseName } from './pool.js';

/** Any constant unique to this project: every replica that migrates takes the same lock. */
const MIGRATION_LOCK_KEY = 0x6e657875; // "nexu"

/** The numbered SQL files, next to this module in source and in dist/. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations', import.meta.url));

export interface MigrationFile {
  version: number;
  name: string;
  checksum: string;
  sql: string;
}

const FILE_PATTERN = /^(\d{4})_([a-z0-9_]+)\.sql$/;

export async function readMigrations(dir = MIGRATIONS_DIR): Promise<MigrationFile[]> {
  if (!existsSync(dir)) {
    throw new AppError('NEXUS_ERR_MIGRATION_FAILED', `migrations folder not found: ${dir}`);
  }
  const files = (await readdir(dir)).filter(file => file.endsWith('.sql')).sort();
  const migrations: MigrationFile[] = [];
  for (const file of files) {
    const match = FILE_PATTERN.exec(file);
    if (!match?.[1] || !match[2]) {
      throw new AppError(
        'NEXUS_ERR_MIGRATION_FAILED',
        `migration file "${file}" must be named NNNN_name.sql`,
      );
    }
    const text = await readFile(`${dir}/${file}`, 'utf8');
    const version = Number(match[1]);
    if (migrations.some(existing => existing.version === version)) {
      throw new AppError(
        'NEXUS_ERR_MIGRATION_FAILED',
        `two migration files are numbered ${match[1]}`,
      );
    }
    migrations.push({
      version,
      name: match[2],
      checksum: createHash('sha256').update(text).digest('hex'),
      sql: text,
    });
  }
  return migrations;
}

/**
 * Applies the migrations not yet recorded in `nexus_migrations`, each in its own transaction,
 * under a session advisory lock so replicas that start together apply each file exactly once.
 * Refuses to run when an applied file was edited. Uses a plain pg client: migration files hold
 * several statements, which slonik (rightly, for application queries) refuses.
 */
export async function migrate(url: string, log: Logger, dir = MIGRATIONS_DIR): Promise<number[]> {
  const migrations = await readMigrations(dir);
  const client = new pg.Client({ connectionString: url, application_name: 'nexus-migrate' });
  await client.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    await client.query(`
      CREATE TABLE IF NOT EXISTS nexus_migrations (
        version integer PRIMARY KEY,
        name text NOT NULL,
        checksum text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
    const { rows } = await client.query<{ version: number; checksum: string }>(
      'SELECT version, checksum FROM nexus_migrations',
    );
    const applied = new Map(rows.map(row => [row.version, row.checksum]));
    const done: number[] = [];
    for (const migration of migrations) {
      const checksum = applied.get(migration.version);
      if (checksum !== undefined) {
        if (checksum !== migration.checksum) {
          throw new AppError(
            'NEXUS_ERR_MIGRATION_CHANGED',
            `migration ${migration.version} (${migration.name}) was edited after it was applied; add a new migration instead`,
          );
        }
        continue;
      }
      try {
        await client.query('BEGIN');
        await client.query(migration.sql);
        await client.query(
          'INSERT INTO nexus_migrations (version, name, checksum) VALUES ($1, $2, $3)',
          [migration.version, migration.name, migration.checksum],
        );
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw new AppError(
          'NEXUS_ERR_MIGRATION_FAILED',
          `migration ${migration.version} (${migration.name}) failed: ${(error as Error).message}`,
          undefined,
          { cause: error },
        );
      }
      log.info({ version: migration.version, name: migration.name }, 'migration applied');
      done.push(migration.version);
    }
    return done;
  } finally {
    // Ending the session releases the advisory lock too.
    await client.end().catch(() => undefined);
  }
}

/**
 * Creates the database named in `url` when it does not exist yet, so a laptop needs no manual
 * step. Needs CREATEDB; where the role lacks it, create the database beforehand.
 */
export async function ensureDatabase(url: string, log: Logger): Promise<void> {
  const probe = new pg.Client({ connectionString: url });
  try {
    await probe.connect();
    return;
  } catch (error) {
    if ((error as { code?: string }).code !== '3D000') throw error;
  } finally {
    await probe.end().catch(() => undefined);
  }
  const name = databaseName(url);
  const maintenance = new URL(url);
  maintenance.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: maintenance.toString() });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
    log.info({ database: name }, 'database created');
  } catch (error) {
    // Another replica created it first.
    if ((error as { code?: string }).code !== '42P04') throw error;
  } finally {
    await admin.end();
  }
}

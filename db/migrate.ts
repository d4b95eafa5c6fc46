import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';
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
  if (!existsSync(dir))
    throw new AppError('NEXUS_ERR_MIGRATION_FAILED', `migrations folder not found: ${dir}`);
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

/** A raw multi-statement script: no parameters, so pg sends it with the simple protocol. */
function script(text: string) {
  const strings = Object.assign([text], { raw: [text] }) as unknown as TemplateStringsArray;
  return sql.unsafe(strings);
}

const appliedRow = z.object({ version: z.number(), checksum: z.string() });

/**
 * Applies the migrations not yet recorded in `nexus_migrations`, each in its own transaction,
 * under a session advisory lock so replicas that start together apply each file exactly once.
 * Refuses to run when an applied file was edited.
 */
export async function migrate(
  pool: DatabasePool,
  log: Logger,
  dir = MIGRATIONS_DIR,
): Promise<number[]> {
  const migrations = await readMigrations(dir);
  return pool.connect(async connection => {
    await connection.query(sql.unsafe`SELECT pg_advisory_lock(${MIGRATION_LOCK_KEY})`);
    try {
      await connection.query(sql.unsafe`
        CREATE TABLE IF NOT EXISTS nexus_migrations (
          version integer PRIMARY KEY,
          name text NOT NULL,
          checksum text NOT NULL,
          applied_at timestamptz NOT NULL DEFAULT now()
        )`);
      const applied = new Map(
        (
          await connection.any(sql.type(appliedRow)`SELECT version, checksum FROM nexus_migrations`)
        ).map(row => [row.version, row.checksum]),
      );
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
          await connection.transaction(async tx => {
            await tx.query(script(migration.sql));
            await tx.query(sql.unsafe`
              INSERT INTO nexus_migrations (version, name, checksum)
              VALUES (${migration.version}, ${migration.name}, ${migration.checksum})`);
          });
        } catch (error) {
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
      await connection.query(sql.unsafe`SELECT pg_advisory_unlock(${MIGRATION_LOCK_KEY})`);
    }
  });
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

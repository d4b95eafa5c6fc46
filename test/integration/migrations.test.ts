import { cp, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { ensureDatabase, migrate, MIGRATIONS_DIR, readMigrations } from '../../db/migrate.js';
import { createLogger } from '../../lib/logger.js';
import { databaseUrl, runDatabase, withAdmin } from '../helpers/services.js';

const log = createLogger('silent');
const created: string[] = [];

async function emptyDatabase(): Promise<string> {
  const name = runDatabase(inject('testRun'));
  await withAdmin(client => client.query(`CREATE DATABASE ${name}`));
  created.push(name);
  return databaseUrl(name);
}

async function query<T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end();
  }
}

afterEach(async () => {
  for (const name of created.splice(0)) {
    await withAdmin(client => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  }
});

describe('migrations', () => {
  it('apply each file exactly once when two replicas start together', async () => {
    const url = await emptyDatabase();
    const files = await readMigrations();
    const [first, second] = await Promise.all([migrate(url, log), migrate(url, log)]);
    // One starter applied everything, the other waited on the lock and found nothing to do.
    expect([...first, ...second].sort((a, b) => a - b)).toEqual(files.map(file => file.version));
    expect(Math.min(first.length, second.length)).toBe(0);
    const rows = await query<{ version: number; n: string }>(
      url,
      'SELECT version, count(*) AS n FROM nexus_migrations GROUP BY version ORDER BY version',
    );
    expect(rows.map(row => [row.version, Number(row.n)])).toEqual(
      files.map(file => [file.version, 1]),
    );
    expect(await migrate(url, log)).toEqual([]);
    const tables = await query<{ table_name: string }>(
      url,
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
    );
    expect(tables.map(row => row.table_name)).toEqual(
      expect.arrayContaining(['nexus_migrations', 'undelivered', 'work']),
    );
  });

  it('refuse to run when an applied file was edited', async () => {
    const url = await emptyDatabase();
    const dir = await mkdtemp(join(tmpdir(), 'nexus-migrations-'));
    await cp(MIGRATIONS_DIR, dir, { recursive: true });
    await migrate(url, log, dir);
    const [file] = (await readMigrations(dir)).map(
      m => `${String(m.version).padStart(4, '0')}_${m.name}.sql`,
    );
    await writeFile(join(dir, file!), '-- edited\nSELECT 1;\n', { flag: 'a' });
    await expect(migrate(url, log, dir)).rejects.toMatchObject({
      code: 'NEXUS_ERR_MIGRATION_CHANGED',
    });
  });

  it('roll back a failing migration and record nothing for it', async () => {
    const url = await emptyDatabase();
    const dir = await mkdtemp(join(tmpdir(), 'nexus-migrations-'));
    await writeFile(join(dir, '0001_good.sql'), 'CREATE TABLE good (id int);');
    await writeFile(
      join(dir, '0002_bad.sql'),
      'CREATE TABLE half (id int);\nSELECT no_such_function();',
    );
    await expect(migrate(url, log, dir)).rejects.toMatchObject({
      code: 'NEXUS_ERR_MIGRATION_FAILED',
      message: expect.stringContaining('migration 2 (bad) failed') as string,
    });
    expect(await query(url, 'SELECT version FROM nexus_migrations')).toEqual([{ version: 1 }]);
    expect(await query(url, "SELECT to_regclass('half') AS t")).toEqual([{ t: null }]);
  });

  it('0017 stops on a sender id two channels claim, naming them, and applies once they are one', async () => {
    const url = await emptyDatabase();
    const dir = await mkdtemp(join(tmpdir(), 'nexus-migrations-'));
    for (const m of (await readMigrations()).filter(m => m.version < 17)) {
      await writeFile(join(dir, `${String(m.version).padStart(4, '0')}_${m.name}.sql`), m.sql);
    }
    await migrate(url, log, dir);
    await query(
      url,
      `INSERT INTO tenants (id, name, type, created_by) VALUES ('acme', 'A', 'x', 't'), ('umbrella', 'U', 'x', 't');
       INSERT INTO channels (tenant_id, name, channel_id, channel_type) VALUES
         ('acme', 'chat.Main', '+18005550100', 'sms'),
         ('umbrella', 'chat.Taken', '1 800 555 0100', 'sms'),
         ('umbrella', 'chat.Own', '+18005550199', 'sms');
       -- A STOP stored before numbers were E.164, and one a later START overrode.
       INSERT INTO sms_consent (tenant_id, sender, address, opted_out, updated_at) VALUES
         ('acme', '+18005550100', '15551234567', true, now()),
         ('acme', '+18005550100', '15557654321', true, now() - interval '1 day'),
         ('acme', '+18005550100', '+15557654321', false, now())`,
    );
    const failure = migrate(url, log);
    await expect(failure).rejects.toMatchObject({ code: 'NEXUS_ERR_MIGRATION_FAILED' });
    const message = await failure.catch(
      (error: Error) => `${error.message} ${String(error.cause)}`,
    );
    expect(message).toMatch(/sender ids claimed by more than one channel/);
    expect(message).toMatch(/tenant acme channel chat\.Main .*tenant umbrella channel chat\.Taken/);
    expect(message).not.toContain('chat.Own');
    // The operator releases the number in one tenant; the migration then applies.
    await query(url, "DELETE FROM channels WHERE tenant_id = 'umbrella' AND name = 'chat.Taken'");
    expect(await migrate(url, log)).toContain(17);
    expect(await query(url, 'SELECT address, opted_out FROM sms_consent ORDER BY address')).toEqual(
      [
        { address: '+15551234567', opted_out: true },
        { address: '+15557654321', opted_out: false },
      ],
    );
  });

  it('0017 carries opt-outs, open threads and contacts of every stored number form over to E.164', async () => {
    const url = await emptyDatabase();
    const dir = await mkdtemp(join(tmpdir(), 'nexus-migrations-'));
    for (const m of (await readMigrations()).filter(m => m.version < 17)) {
      await writeFile(join(dir, `${String(m.version).padStart(4, '0')}_${m.name}.sql`), m.sql);
    }
    await migrate(url, log, dir);
    // The previous release stored what the aggregator sent, digits only: with or without the
    // international call prefix 00, which domain/phone.ts now reads as "+".
    await query(
      url,
      `INSERT INTO tenants (id, name, type, created_by) VALUES ('acme', 'A', 'x', 't');
       INSERT INTO sms_consent (tenant_id, sender, address, opted_out, updated_at) VALUES
         ('acme', '+18005550100', '0015550001111', true, now()),
         ('acme', '+18005550100', '15550002222', false, now() - interval '2 days'),
         ('acme', '+18005550100', '0015550002222', true, now() - interval '1 day'),
         ('acme', '+18005550100', '12345', true, now());
       INSERT INTO sms_consent_changes (tenant_id, sender, address, action, source) VALUES
         ('acme', '+18005550100', '0015550001111', 'opt-out', 'keyword');
       INSERT INTO interactions (id, tenant_id, media, subtype, channel, customer_address, updated_at) VALUES
         ('00000000-0000-0000-0000-000000000001', 'acme', 'chat', 'SMS', 'chat.Main', '0015550003333', now()),
         ('00000000-0000-0000-0000-000000000002', 'acme', 'chat', 'SMS', 'chat.Main', '15550004444', now() - interval '1 hour'),
         ('00000000-0000-0000-0000-000000000003', 'acme', 'chat', 'SMS', 'chat.Main', '0015550004444', now());
       INSERT INTO contacts (id, tenant_id) VALUES
         ('00000000-0000-0000-0000-00000000000a', 'acme'),
         ('00000000-0000-0000-0000-00000000000b', 'acme'),
         ('00000000-0000-0000-0000-00000000000c', 'acme');
       INSERT INTO contact_identifiers (tenant_id, kind, value, contact_id, created_at) VALUES
         ('acme', 'phone', '15550005555', '00000000-0000-0000-0000-00000000000a', now()),
         ('acme', 'phone', '+15550006666', '00000000-0000-0000-0000-00000000000b', now()),
         ('acme', 'phone', '15550006666', '00000000-0000-0000-0000-00000000000b', now()),
         ('acme', 'phone', '15550007777', '00000000-0000-0000-0000-00000000000c', now() - interval '1 day'),
         ('acme', 'phone', '0015550007777', '00000000-0000-0000-0000-00000000000c', now()),
         ('acme', 'phone', '12345', '00000000-0000-0000-0000-00000000000c', now())`,
    );
    expect(await migrate(url, log)).toContain(17);
    expect(
      await query(url, 'SELECT address, opted_out FROM sms_consent ORDER BY address COLLATE "C"'),
    ).toEqual([
      { address: '+15550001111', opted_out: true },
      { address: '+15550002222', opted_out: true },
      { address: '12345', opted_out: true },
    ]);
    expect(await query(url, 'SELECT address FROM sms_consent_changes')).toEqual([
      { address: '+15550001111' },
    ]);
    // Two legacy forms of one open thread: the latest takes the number, the other keeps its own.
    expect(await query(url, 'SELECT id, customer_address FROM interactions ORDER BY id')).toEqual([
      { id: '00000000-0000-0000-0000-000000000001', customer_address: '+15550003333' },
      { id: '00000000-0000-0000-0000-000000000002', customer_address: '15550004444' },
      { id: '00000000-0000-0000-0000-000000000003', customer_address: '+15550004444' },
    ]);
    // Contacts' phones: moved unless their E.164 twin exists; of two legacy forms, the earliest.
    expect(
      await query(
        url,
        `SELECT value FROM contact_identifiers WHERE kind = 'phone' ORDER BY value COLLATE "C"`,
      ),
    ).toEqual([
      { value: '+15550005555' },
      { value: '+15550006666' },
      { value: '+15550007777' },
      { value: '0015550007777' },
      { value: '12345' },
      { value: '15550006666' },
    ]);
  });

  it('reject badly named files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nexus-migrations-'));
    await writeFile(join(dir, '1_short.sql'), 'SELECT 1;');
    await expect(readMigrations(dir)).rejects.toThrow(/must be named NNNN_name.sql/);
  });

  it('create the database when it does not exist', async () => {
    const name = runDatabase(inject('testRun'));
    created.push(name);
    await ensureDatabase(databaseUrl(name), log);
    await ensureDatabase(databaseUrl(name), log);
    expect(await query(databaseUrl(name), 'SELECT current_database() AS db')).toEqual([
      { db: name },
    ]);
  });
});

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createTestDatabase, deleteKeys, eventually } from '../helpers/harness.js';
import { startHubProcess, type HubProcess } from '../helpers/processes.js';
import { freePort } from '../helpers/redis-server.js';
import { TEST_REDIS_URL } from '../helpers/services.js';

/**
 * The README's examples are documentation a new user runs as written, in order, on a fresh
 * start: this test does exactly that. It starts the hub (`bin/start.ts`, all in one, with the
 * defaults the README assumes: the development admin token, migrations on start) on a fresh
 * database and free ports, then runs every `sh` block of the README in order in one bash session,
 * with `localhost:4000` and `localhost:4004` pointed at those ports. Every `curl` fails the run on
 * an HTTP error (`--fail-with-body`), so an example that answers 4xx or 5xx, uses an unset
 * variable or needs a step the README does not show fails here. Blocks preceded by
 * `<!-- readme-test: skip … -->` are not run (installing, starting the hub, k6 against a
 * deployment).
 */

const SKIP = /<!--\s*readme-test:\s*skip\b[^>]*-->\s*$/;

export interface ReadmeBlock {
  readonly line: number;
  readonly code: string;
}

/** The README's `sh` blocks that the test runs, in order. */
export function runnableBlocks(markdown: string): ReadmeBlock[] {
  const lines = markdown.split('\n');
  const blocks: ReadmeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]?.trim() !== '```sh') continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && lines[i]?.trim() !== '```'; i++) body.push(lines[i] ?? '');
    let previous = start - 1;
    while (previous >= 0 && lines[previous]?.trim() === '') previous--;
    if (previous >= 0 && SKIP.test(lines[previous] ?? '')) continue;
    blocks.push({ line: start + 1, code: body.join('\n') });
  }
  return blocks;
}

function runBash(script: string, env: Record<string, string>) {
  return new Promise<{ code: number | null; out: string }>(resolve => {
    const child = spawn('bash', ['-c', script], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.once('exit', code => resolve({ code, out }));
  });
}

describe('the README', () => {
  let hub: HubProcess | undefined;
  let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
  let apiPort = 0;
  let metricsPort = 0;
  const prefix = `{readme${Date.now().toString(36)}}`;

  beforeAll(async () => {
    database = await createTestDatabase();
    apiPort = await freePort();
    metricsPort = await freePort();
    hub = await startHubProcess(
      {
        dbUrl: database.url,
        prefix,
        redisUrl: TEST_REDIS_URL,
      },
      'start',
      {
        NODE_ENV: 'development',
        PORT: String(apiPort),
        METRICS_PORT: String(metricsPort),
        NEXUS_MIGRATE_ON_START: 'true',
        LOG_LEVEL: 'warn',
      },
    );
  }, 90_000);

  afterAll(async () => {
    await hub?.stop();
    await database?.drop();
    const redis = new Redis(TEST_REDIS_URL);
    await deleteKeys(redis, prefix);
    await redis.quit();
  });

  it('runs every example as written, in order, on a fresh start', async () => {
    const blocks = runnableBlocks(readFileSync('README.md', 'utf8'));
    expect(blocks.length).toBeGreaterThan(4);
    const script = [
      'set -euo pipefail',
      // Every example's curl fails the run on an HTTP error, printing the answer.
      'curl() { command curl --fail-with-body --show-error "$@"; }',
      ...blocks.map(
        block =>
          `echo "== README.md line ${block.line}" >&2\n` +
          block.code
            .replaceAll('localhost:4000', `localhost:${apiPort}`)
            .replaceAll('localhost:4004', `localhost:${metricsPort}`),
      ),
      'echo "== all README examples ran"',
    ].join('\n');
    const result = await runBash(script, {});
    if (result.code !== 0) {
      throw new Error(`README example failed (exit ${result.code}):\n${result.out.slice(-6000)}`);
    }
    expect(result.out).toContain('== all README examples ran');
    expect(result.out).toMatch(/"state":\s*"green"/);
    // What the examples did, read back from the hub's database once the workers are through.
    const client = new pg.Client({ connectionString: database?.url });
    await client.connect();
    try {
      const numbered = await eventually(
        async () => {
          const { rows } = await client.query<{ text: string; sender_type: string }>(
            `SELECT text, sender_type FROM messages WHERE seq IS NOT NULL ORDER BY created_at`,
          );
          return rows.length >= 3 ? rows : undefined;
        },
        20_000,
        "the examples' messages, numbered",
      );
      expect(numbered).toEqual([
        { text: 'Hello', sender_type: 'customer' },
        { text: 'Hi Ada', sender_type: 'agent' },
        { text: 'Is my order shipped?', sender_type: 'customer' },
      ]);
      const phones = await eventually(
        async () => {
          const { rows } = await client.query<{ value: string }>(
            `SELECT value FROM contact_identifiers WHERE kind = 'phone'`,
          );
          return rows.length > 0 ? rows.map(row => row.value) : undefined;
        },
        20_000,
        "the SMS customer's contact",
      );
      expect(phones).toEqual(['+15551234567']);
      const mails = await client.query<{ record_id: string; message_id: string }>(
        `SELECT record_id, message_id FROM email_messages WHERE campaign = 'spring'`,
      );
      expect(mails.rows).toEqual([
        {
          record_id: 'r1',
          message_id: expect.stringMatching(/^<[0-9a-f-]{36}@news\.example\.com>$/),
        },
      ]);
    } finally {
      await client.end();
    }
  }, 120_000);
});

import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { sql } from 'slonik';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { buildApp } from '../../api/app.js';
import { loadConfig } from '../../lib/config.js';
import { keyId } from '../../lib/secrets.js';
import { useHarness } from '../helpers/harness.js';

describe('secret key rotation', () => {
  const oldKey = randomBytes(32);
  const h = useHarness({ NEXUS_SECRET_KEY: oldKey.toString('hex') });

  it('re-seals every secret with the new key; reads work with the new key alone', async () => {
    const admin = `Bearer ${h().config.adminToken}`;
    const app = h().app();
    await request(app)
      .post('/nexus/v3/provisioning/tenants')
      .set('Authorization', admin)
      .send({ id: 't1', name: 'T', token: 'tenant-password' })
      .expect(201);
    for (const [name, body] of [
      ['mGageSMS', { url: 'https://m.example', secret: { username: 'u', password: 'p' } }],
      ['SparkPostEmail', { url: 'https://s.example', secret: { apikey: 'k' } }],
      ['SMS', { url: 'N/A', data: { provider: 'mGage' } }],
      ['WebhookTransportTarget-crm', { url: 'https://crm.example', secret: 'first' }],
    ] as const) {
      await request(app)
        .post(`/nexus/v3/provisioning/services/t1/${name}`)
        .set('Authorization', admin)
        .send(body)
        .expect(201);
    }
    const keyIds = () =>
      h().db.anyFirst(
        sql.type(
          z.object({ k: z.string().nullable() }),
        )`SELECT secret_key_id AS k FROM services ORDER BY name COLLATE "C"`,
      );
    // A rotated webhook secret: the previous one stays sealed for its grace period.
    await request(app)
      .put('/nexus/v3/provisioning/services/t1/WebhookTransportTarget-crm')
      .set('Authorization', admin)
      .send({ url: 'https://crm.example', secret: 'second' })
      .expect(200);
    const previousKeyId = () =>
      h().db.oneFirst(
        sql.type(z.object({ k: z.string().nullable() }))`
          SELECT previous_secret_key_id AS k FROM webhook_targets`,
      );
    expect(await previousKeyId()).toBe(keyId(oldKey));
    expect(await keyIds()).toEqual([null, keyId(oldKey), keyId(oldKey), keyId(oldKey)]);

    const newKey = randomBytes(32);
    // `npm run rotate-secrets` with the new key, the old one as previous.
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'db/rotate-secrets-cli.ts'], {
      env: {
        ...process.env,
        DATABASE_URL: h().dbUrl,
        NEXUS_SECRET_KEY: newKey.toString('hex'),
        NEXUS_SECRET_KEYS_PREVIOUS: oldKey.toString('base64'),
        LOG_LEVEL: 'info',
      },
      encoding: 'utf8',
    });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/"services":3,"tenants":1,"webhookPreviousSecrets":1/);
    expect(await keyIds()).toEqual([null, keyId(newKey), keyId(newKey), keyId(newKey)]);
    expect(await previousKeyId()).toBe(keyId(newKey));
    const token = await h().db.oneFirst(
      sql.type(z.object({ t: z.string() }))`SELECT token_sealed AS t FROM tenants`,
    );
    expect(token.split('.')[1]).toBe(keyId(newKey));

    // An app with only the new key reads everything; one with only the old key cannot.
    const config = loadConfig({
      ...process.env,
      NODE_ENV: 'test',
      LOG_LEVEL: 'silent',
      DATABASE_URL: h().dbUrl,
      NEXUS_QUEUE_PREFIX: h().config.queues.prefix,
      NEXUS_ADMIN_TOKEN: h().config.adminToken,
      NEXUS_SECRET_KEY: newKey.toString('hex'),
    });
    const fresh = buildApp({
      config,
      log: h().log,
      db: h().db,
      queues: h().queues,
      redis: h().redis,
      bus: h().bus,
    });
    const read = await request(fresh)
      .get('/nexus/v3/provisioning/services/t1/mGageSMS')
      .set('Authorization', admin)
      .expect(200);
    expect(read.body.data.secret).toEqual({ username: true, password: true });
    const stale = await request(app)
      .get('/nexus/v3/provisioning/services/t1/mGageSMS')
      .set('Authorization', admin)
      .expect(500);
    expect(stale.body.status.code).toBe('NEXUS_ERR_SECRET_UNREADABLE');
  });
});

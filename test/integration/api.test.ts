import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../api/app.js';
import { createDbPool, type DatabasePool } from '../../db/pool.js';
import { registry } from '../../lib/metrics.js';
import { closeRedis, createRedis } from '../../lib/redis.js';
import { QueueSet } from '../../queues/index.js';
import { ADMIN_TOKEN, eventually, useHarness } from '../helpers/harness.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

describe('API shell', () => {
  const h = useHarness();
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('answers /health/detail in the guide shape, green with both services up', async () => {
    const res = await request(h().app()).get('/health/detail').expect(200);
    expect(res.body).toMatchObject({
      buildInfo: {
        version: expect.any(String),
        changeset: expect.any(String),
        timestamp: expect.any(String),
      },
      startTime: expect.any(String),
      upTime: expect.any(Number),
      os: {
        upTime: expect.any(Number),
        freemem: expect.any(Number),
        loadavg: expect.any(Array),
        totalmem: expect.any(Number),
      },
      memoryUsage: { rss: expect.any(Number), heapUsed: expect.any(Number) },
      cache: { ready: true, state: 'READY' },
      db: { ready: true },
      state: 'green',
    });
    await request(h().app()).get('/health/live').expect(200, { state: 'green' });
    await request(h().app()).get('/health/ready').expect(200);
  });

  it('is yellow when Redis may evict jobs', async () => {
    const { config, log, db, queues, redis, bus } = h();
    const app = buildApp({
      config,
      log,
      db,
      queues,
      redis,
      bus,
      evictionPolicy: () => 'allkeys-lru',
    });
    const res = await request(app).get('/health/detail').expect(200);
    expect(res.body.state).toBe('yellow');
  });

  it('turns red (503) when PostgreSQL is unreachable and green again when it is back', async () => {
    const proxy = await startTcpProxy(5432);
    cleanups.push(() => proxy.close());
    const url = new URL(h().dbUrl);
    url.port = String(proxy.port);
    const db: DatabasePool = await createDbPool({ ...h().config.db, url: url.toString() }, h().log);
    cleanups.push(() => db.end());
    const { config, log, queues, redis, bus } = h();
    const app = buildApp({ config, log, db, queues, redis, bus });
    await request(app).get('/health/detail').expect(200);

    await proxy.cut();
    const red = await request(app).get('/health/detail').expect(503);
    expect(red.body).toMatchObject({ state: 'red', db: { ready: false }, cache: { ready: true } });
    await request(app).get('/health/ready').expect(503);
    const failed = await request(app)
      .get('/nexus/v3/undelivered')
      .set('Authorization', `Bearer ${ADMIN_TOKEN}`)
      .expect(503);
    expect(failed.body.status.code).toBe('NEXUS_ERR_DB_UNAVAILABLE');

    await proxy.restore();
    await eventually(
      async () => (await request(app).get('/health/detail')).body.state === 'green',
      15_000,
      'green after PostgreSQL is back',
    );
    await request(app)
      .get('/nexus/v3/undelivered')
      .set('Authorization', `Bearer ${ADMIN_TOKEN}`)
      .expect(200);
  });

  it('turns red when Redis is unreachable and green again when it is back', async () => {
    const proxy: TcpProxy = await startTcpProxy(6379);
    cleanups.push(() => proxy.close());
    const { config, log, db, bus } = h();
    const redisConfig = { ...config.redis, nodes: [`redis://127.0.0.1:${proxy.port}`] };
    const redis = createRedis(redisConfig, 'producer', 'api-test', log);
    cleanups.push(() => closeRedis(redis));
    const queues = new QueueSet(redis, config.queues.prefix, log);
    cleanups.push(() => queues.close());
    const app = buildApp({ config, log, db, queues, redis, bus });
    await eventually(async () => (await request(app).get('/health/detail')).status === 200);

    await proxy.cut();
    await eventually(async () => {
      const res = await request(app).get('/health/detail');
      return res.status === 503 && res.body.state === 'red' && res.body.cache.ready === false;
    });
    await proxy.restore();
    await eventually(
      async () => (await request(app).get('/health/detail')).body.state === 'green',
      15_000,
      'green after Redis is back',
    );
  });

  it('answers bad JSON, oversized bodies and unknown routes in the envelope', async () => {
    const app = h().app();
    const badJson = await request(app)
      .post('/nexus/v3/undelivered/replay')
      .set('Authorization', `Bearer ${ADMIN_TOKEN}`)
      .set('Content-Type', 'application/json')
      .send('{"since": ')
      .expect(400);
    expect(badJson.body.status.code).toBe('NEXUS_ERR_BAD_JSON');

    const large = await request(app)
      .post('/nexus/v3/undelivered/replay')
      .set('Authorization', `Bearer ${ADMIN_TOKEN}`)
      .send({ since: new Date().toISOString(), pad: 'x'.repeat(2 * 1024 * 1024) })
      .expect(413);
    expect(large.body.status.code).toBe('NEXUS_ERR_BODY_TOO_LARGE');

    const missing = await request(app).get('/nexus/v3/nothing-here').expect(404);
    expect(missing.body).toEqual({
      status: { code: 'NEXUS_ERR_NOT_FOUND', message: 'no route for GET /nexus/v3/nothing-here' },
    });
  });

  it('guards Bull Board with the admin token, as Bearer or as the Basic password', async () => {
    const app = h().app();
    const anonymous = await request(app).get('/admin/queues').expect(401);
    expect(anonymous.headers['www-authenticate']).toMatch(/^Basic /);
    expect(anonymous.body.status.code).toBe('NEXUS_ERR_UNAUTHORIZED');
    await request(app).get('/admin/queues').set('Authorization', 'Bearer wrong-token').expect(401);
    await request(app)
      .get('/admin/queues')
      .set('Authorization', `Bearer ${ADMIN_TOKEN}`)
      .expect(200);
    await request(app).get('/admin/queues').auth('admin', ADMIN_TOKEN).expect(200);

    const queues = await request(app)
      .get('/admin/queues/api/queues')
      .set('Authorization', `Bearer ${ADMIN_TOKEN}`)
      .expect(200);
    const names = (queues.body as { queues: { name: string }[] }).queues.map(q => q.name).sort();
    expect(names).toEqual([
      'ai-connector',
      'inbound',
      'maintenance',
      'outbound-email',
      'outbound-sms',
      'receipts',
      'webhooks',
    ]);
  });

  it('echoes a well-formed X-B3-TraceId and X-Request-Id, and makes them up otherwise', async () => {
    const app = h().app();
    const traced = await request(app)
      .get('/health/live')
      .set('X-B3-TraceId', '463AC35C9F6413AD48485A3953BB6124')
      .set('X-Request-Id', 'req-42')
      .expect(200);
    expect(traced.headers['x-b3-traceid']).toBe('463ac35c9f6413ad48485a3953bb6124');
    expect(traced.headers['x-request-id']).toBe('req-42');

    const fresh = await request(app)
      .get('/health/live')
      .set('X-B3-TraceId', 'not a trace')
      .expect(200);
    expect(fresh.headers['x-b3-traceid']).toMatch(/^[0-9a-f]{32}$/);
    expect(fresh.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('exposes the metric names the guide lists', async () => {
    await request(h().app()).get('/nexus/v3/nothing-here').expect(404);
    const text = await registry.metrics();
    for (const name of [
      'nexus_process_cpu_user_seconds_total',
      'nexus_nodejs_eventloop_lag_seconds',
      'nexus_request_total',
      'nexus_errors_total',
      'nexus_redis_connections_established',
      'nexus_redis_connections_reconnecting',
      'nexus_redis_connections_ready',
      'nexus_redis_errors_total',
      'nexus_redis_duration_until_ready',
      'nexus_db_connect_total',
      'nexus_db_request_total',
      'nexus_db_success_total',
      'nexus_db_errors_total',
      'nexus_db_request_duration_milliseconds',
      'nexus_queue_jobs',
      'nexus_queue_oldest_waiting_seconds',
      'nexus_job_duration_seconds',
      'nexus_jobs_total',
      'nexus_undelivered_total',
    ]) {
      expect(text, name).toMatch(new RegExp(`^# TYPE ${name} `, 'm'));
    }
  });
});

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES, ConfigError, loadConfig } from './config.js';

describe('loadConfig', () => {
  it('works with no variables set, with development defaults and warnings', () => {
    const config = loadConfig({});
    expect(config.db.url).toBe('postgres://postgres@127.0.0.1:5432/nexus');
    expect(config.redis.nodes).toEqual(['redis://127.0.0.1:6379']);
    expect(config.http.port).toBe(4000);
    expect(config.metrics.port).toBe(4004);
    expect(config.queues.prefix).toBe('{nexus}');
    expect(config.secretKey).toHaveLength(32);
    expect(config.warnings.join('\n')).toMatch(/NEXUS_SECRET_KEY[\s\S]*NEXUS_ADMIN_TOKEN/);
  });

  it('names every bad variable in one error', () => {
    let error: unknown;
    try {
      loadConfig({
        PORT: 'eighty',
        METRICS_PORT: '70000',
        REDIS_URL: 'redis://a:6379,http://b',
        LOG_LEVEL: 'loud',
        DB_SSL: 'maybe',
        NEXUS_QUEUE_PREFIX: 'a:b',
        NEXUS_SECRET_KEY: 'short',
        NEXUS_WORKER_CONCURRENCY: '0',
        NEXUS_WEBHOOK_BATCH_SIZE: '5000',
      });
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    for (const name of [
      'PORT',
      'METRICS_PORT',
      'REDIS_URL',
      'LOG_LEVEL',
      'DB_SSL',
      'NEXUS_QUEUE_PREFIX',
      'NEXUS_SECRET_KEY',
      'NEXUS_WORKER_CONCURRENCY',
      'NEXUS_WEBHOOK_BATCH_SIZE',
    ]) {
      expect(problems).toMatch(new RegExp(`^${name} `, 'm'));
    }
    expect((error as ConfigError).problems).toHaveLength(9);
    expect(problems).toMatch(/^NEXUS_WEBHOOK_BATCH_SIZE .*at most 1000/m);
    expect((error as ConfigError).message).toMatch(/^Invalid environment variables: /);
  });

  it('requires the secret key and the admin token in production', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(
      /NEXUS_SECRET_KEY is required[\s\S]*NEXUS_ADMIN_TOKEN is required/,
    );
    const config = loadConfig({
      NODE_ENV: 'production',
      NEXUS_SECRET_KEY: 'ab'.repeat(32),
      NEXUS_ADMIN_TOKEN: 'a-long-enough-admin-token',
    });
    expect(config.warnings).toEqual([]);
    expect(config.secretKey.toString('hex')).toBe('ab'.repeat(32));
  });

  it('accepts base64 keys, several Redis nodes, and treats empty variables as unset', () => {
    const config = loadConfig({
      NEXUS_SECRET_KEY: Buffer.alloc(32, 7).toString('base64'),
      REDIS_URL: 'redis://r1:6379, rediss://r2:6380',
      REDIS_CLUSTER: 'true',
      PORT: '',
      NEXUS_WORKER_QUEUES: 'inbound, webhooks',
    });
    expect(config.secretKey.equals(Buffer.alloc(32, 7))).toBe(true);
    expect(config.redis.nodes).toEqual(['redis://r1:6379', 'rediss://r2:6380']);
    expect(config.http.port).toBe(4000);
    expect(config.workers.queues).toEqual(['inbound', 'webhooks']);
  });

  it('derives the per-target webhook limits, and keeps a target within the process limit', () => {
    expect(loadConfig({}).webhooks).toMatchObject({
      concurrency: 50,
      targetConcurrency: 25,
      batchSize: 50,
      targetBatches: 2,
    });
    expect(
      loadConfig({ NEXUS_WEBHOOK_CONCURRENCY: '400', NEXUS_WEBHOOK_BATCH_SIZE: '10' }).webhooks,
    ).toMatchObject({ targetConcurrency: 200, targetBatches: 80 });
    expect(
      loadConfig({ NEXUS_WEBHOOK_TARGET_CONCURRENCY: '50', NEXUS_WEBHOOK_TARGET_BATCHES: '7' })
        .webhooks,
    ).toMatchObject({ targetConcurrency: 50, targetBatches: 7 });
    expect(() => loadConfig({ NEXUS_WEBHOOK_TARGET_CONCURRENCY: '51' })).toThrow(
      /NEXUS_WEBHOOK_TARGET_CONCURRENCY must be at most NEXUS_WEBHOOK_CONCURRENCY \(50\)/,
    );
    expect(() => loadConfig({ NEXUS_WEBHOOK_TARGET_BATCHES: '0' })).toThrow(
      /^Invalid environment variables: NEXUS_WEBHOOK_TARGET_BATCHES /,
    );
  });

  it('requires a hash-tagged prefix on Redis Cluster', () => {
    expect(() => loadConfig({ REDIS_CLUSTER: 'true', NEXUS_QUEUE_PREFIX: 'nexus' })).toThrow(
      /hash-tagged/,
    );
  });

  it('reads the Redis TLS files at start, and names the variable of a file it cannot use', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nexus-config-'));
    try {
      const pem = (name: string) => {
        const path = join(dir, name);
        writeFileSync(path, `-----BEGIN ${name}-----\nAAAA\n-----END ${name}-----\n`);
        return path;
      };
      const files = {
        REDIS_TLS_CA_FILE: pem('CA'),
        REDIS_TLS_CERT_FILE: pem('CERT'),
        REDIS_TLS_KEY_FILE: pem('KEY'),
      };
      const config = loadConfig({
        REDIS_URL: 'rediss://r1:6380',
        ...files,
        REDIS_TLS_SERVERNAME: 'redis.example.com',
      });
      expect(config.redis.tls).toBe(true);
      expect(config.redis.tlsOptions).toEqual({
        ca: readFileSync(files.REDIS_TLS_CA_FILE, 'utf8'),
        cert: readFileSync(files.REDIS_TLS_CERT_FILE, 'utf8'),
        key: readFileSync(files.REDIS_TLS_KEY_FILE, 'utf8'),
        servername: 'redis.example.com',
      });
      expect(loadConfig({ REDIS_TLS: 'true' }).redis.tlsOptions).toEqual({
        ca: undefined,
        cert: undefined,
        key: undefined,
        servername: undefined,
      });

      writeFileSync(join(dir, 'not-pem'), 'hello');
      let error: unknown;
      try {
        loadConfig({
          REDIS_TLS: 'true',
          REDIS_TLS_CA_FILE: join(dir, 'missing.pem'),
          REDIS_TLS_CERT_FILE: join(dir, 'not-pem'),
          REDIS_TLS_KEY_FILE: dir,
          PORT: 'eighty',
        });
      } catch (thrown) {
        error = thrown;
      }
      expect(error).toBeInstanceOf(ConfigError);
      const problems = (error as ConfigError).problems;
      expect(problems).toEqual([
        expect.stringMatching(/^PORT /),
        expect.stringMatching(/^REDIS_TLS_CA_FILE cannot be read \(.*missing\.pem: ENOENT\)$/),
        expect.stringMatching(/^REDIS_TLS_CERT_FILE is not a PEM file \(.*not-pem\)$/),
        expect.stringMatching(/^REDIS_TLS_KEY_FILE cannot be read \(.*: EISDIR\)$/),
      ]);

      // TLS settings without TLS, and half a client certificate, are mistakes.
      expect(() => loadConfig({ REDIS_TLS_CA_FILE: files.REDIS_TLS_CA_FILE })).toThrow(
        /REDIS_TLS_CA_FILE is set but Redis TLS is off/,
      );
      expect(() =>
        loadConfig({ REDIS_TLS: 'true', REDIS_TLS_CERT_FILE: files.REDIS_TLS_CERT_FILE }),
      ).toThrow(/REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE must be set together/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reads the agent desktops' origins, the agent token lifetime and the trusted proxies, refusing what is not one", () => {
    const config = loadConfig({
      NEXUS_UX_ALLOWED_ORIGINS: 'https://desktop.example.com, http://10.0.0.5:8080',
      NEXUS_AGENT_TOKEN_TTL_SECONDS: '3600',
    });
    expect(config.uxAllowedOrigins).toEqual([
      'https://desktop.example.com',
      'http://10.0.0.5:8080',
    ]);
    expect(config.agentTokenTtlSeconds).toBe(3600);
    expect(loadConfig({}).uxAllowedOrigins).toEqual([]);
    expect(loadConfig({}).agentTokenTtlSeconds).toBe(43_200);
    for (const origin of [
      'https://desktop.example.com/',
      'desktop.example.com',
      'javascript:alert(1)',
      '*',
    ]) {
      expect(() => loadConfig({ NEXUS_UX_ALLOWED_ORIGINS: origin }), origin).toThrow(
        /NEXUS_UX_ALLOWED_ORIGINS each entry must be an origin/,
      );
    }
    expect(loadConfig({}).trustProxy).toBe(false);
    expect(loadConfig({ NEXUS_TRUST_PROXY: '2' }).trustProxy).toBe(2);
    expect(loadConfig({ NEXUS_TRUST_PROXY: 'loopback, 10.0.0.0/8, fd00::1' }).trustProxy).toBe(
      'loopback, 10.0.0.0/8, fd00::1',
    );
    for (const proxies of ['true', 'ingress', '10.0.0.0/99']) {
      expect(() => loadConfig({ NEXUS_TRUST_PROXY: proxies }), proxies).toThrow(
        /NEXUS_TRUST_PROXY must be a number of proxy hops/,
      );
    }
    expect(() => loadConfig({ NEXUS_AGENT_TOKEN_TTL_SECONDS: '30' })).toThrow(
      /NEXUS_AGENT_TOKEN_TTL_SECONDS must be at least 60 seconds/,
    );
  });

  it('returns a frozen object', () => {
    const config = loadConfig({});
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.redis.nodes)).toBe(true);
    expect(() => {
      (config.http as { port: number }).port = 1;
    }).toThrow(TypeError);
  });

  it('is documented: the README configuration table lists every variable', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const documented = new Set(
      [...readme.matchAll(/^\| `([A-Z_]+)` +\|/gm)].map(match => match[1]),
    );
    expect(CONFIG_VARIABLES.filter(name => !documented.has(name))).toEqual([]);
    // …and no variable the configuration does not read.
    const known = new Set<string>(CONFIG_VARIABLES);
    expect([...documented].filter(name => name && !known.has(name))).toEqual([]);
  });
});

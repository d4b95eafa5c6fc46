import { randomUUID } from 'node:crypto';
import { sql } from 'slonik';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { BuiltApp } from '../../api/app.js';
import { TokenService } from '../../api/auth/tokens.js';
import { connect } from '../helpers/chat.js';
import { createHarness, eventually, type Harness } from '../helpers/harness.js';
import { startIdentityProvider, type IdentityProvider } from '../helpers/identity-provider.js';

/**
 * Agent sign-in (`POST /auth/v3/agent/token`), renewal, `GET /nexus/v3/agent/me`, the passwords
 * operators set, the failed sign-in throttle, and the `/agent` socket's token expiry, against
 * the real PostgreSQL and Redis.
 */

const TENANT = 'signin-a';
const OTHER = 'signin-b';
const PASSWORD = 'correct horse battery';
/** The TTL the hub is configured with here: tokens it signs expire this long after. */
const TTL_SECONDS = 3_600;

let idp: IdentityProvider;
let h: Harness;
let app: BuiltApp;
const admin = () => ({ Authorization: `Bearer ${h.config.adminToken}` });
const operatorOf = (tenant: string) => ({ ...admin(), 'x-ccid': tenant });

beforeAll(async () => {
  idp = await startIdentityProvider();
});
afterAll(() => idp.close());
beforeEach(async () => {
  h = await createHarness({
    NEXUS_JWT_ISSUER: idp.issuer,
    NEXUS_JWT_JWKS_URL: idp.jwksUrl,
    NEXUS_AGENT_TOKEN_TTL_SECONDS: String(TTL_SECONDS),
  });
  app = h.app();
  for (const id of [TENANT, OTHER]) {
    await request(app)
      .post('/nexus/v3/provisioning/tenants')
      .set(admin())
      .send({ id, name: id })
      .expect(201);
  }
});
afterEach(() => h.close());

async function createAgent(
  username: string,
  password?: string,
  tenant = TENANT,
): Promise<{ id: string; body: unknown }> {
  const res = await request(app)
    .post('/nexus/v3/agents')
    .set(operatorOf(tenant))
    .send({ username, name: `Agent ${username}`, ...(password ? { password } : {}) })
    .expect(201);
  return { id: res.body.data.id as string, body: res.body };
}

const signIn = (body: Record<string, unknown>) =>
  request(app).post('/auth/v3/agent/token').send(body);

const storedHash = (id: string) =>
  h.db.oneFirst(
    sql.type(z.object({ password_hash: z.string().nullable() }))`
      SELECT password_hash FROM agents WHERE id = ${id}`,
  );

/** Seconds between an ISO time and now. */
const secondsFromNow = (iso: string) => (Date.parse(iso) - Date.now()) / 1000;

describe('agent sign-in', () => {
  it('signs an agent in with its password; the token opens /agent/me and the /agent socket', async () => {
    const alice = await createAgent('alice', PASSWORD);
    expect(await storedHash(alice.id)).toMatch(/^scrypt\$16384\$8\$1\$[\w-]{22}\$[\w-]{43}$/);

    const res = await signIn({ ccid: TENANT, username: 'alice', password: PASSWORD }).expect(200);
    expect(res.body.status.code).toBe(0);
    const { token, expiresAt, agent } = res.body.data;
    expect(agent).toEqual({ id: alice.id, username: 'alice', name: 'Agent alice', tenant: TENANT });
    // The hub's configured TTL, not the 12-hour default.
    expect(secondsFromNow(expiresAt)).toBeGreaterThan(TTL_SECONDS - 10);
    expect(secondsFromNow(expiresAt)).toBeLessThanOrEqual(TTL_SECONDS);

    const me = await request(app)
      .get('/nexus/v3/agent/me')
      .set('Authorization', `Bearer ${token}`)
      .expect(200);
    expect(me.body.data).toEqual({
      id: alice.id,
      username: 'alice',
      name: 'Agent alice',
      tenant: TENANT,
      tokenExpiresAt: expiresAt,
    });

    // An operator JWT with role agent is that agent too, with no hub expiry.
    const jwt = await idp.sign({ role: 'agent', ccid: TENANT, sub: 'alice' });
    const viaJwt = await request(app)
      .get('/nexus/v3/agent/me')
      .set('Authorization', `Bearer ${jwt}`)
      .expect(200);
    expect(viaJwt.body.data).toMatchObject({ id: alice.id, tokenExpiresAt: null });
    // Operators and keys are not agents.
    const notAgent = await request(app).get('/nexus/v3/agent/me').set(admin()).expect(403);
    expect(notAgent.body.status.code).toBe('NEXUS_ERR_AGENT_REQUIRED');
    await request(app).get('/nexus/v3/agent/me').expect(401);

    const api = await h.serve();
    const socket = connect(api.url, '/agent', { token });
    await socket.connected;
    const presence = await socket.socket.timeout(5_000).emitWithAck('presence', { ready: true });
    expect(presence).toMatchObject({ status: { code: 0 }, data: { ready: true } });
    socket.socket.disconnect();
  });

  it('never shows the password or its hash', async () => {
    const created = await createAgent('alice', PASSWORD);
    const answers = [
      created.body,
      (await request(app).get(`/nexus/v3/agents/${created.id}`).set(operatorOf(TENANT)).expect(200))
        .body,
      (await request(app).get('/nexus/v3/agents').set(operatorOf(TENANT)).expect(200)).body,
      (
        await request(app)
          .patch(`/nexus/v3/agents/${created.id}`)
          .set(operatorOf(TENANT))
          .send({ name: 'Alice' })
          .expect(200)
      ).body,
      (await signIn({ ccid: TENANT, username: 'alice', password: PASSWORD }).expect(200)).body,
    ];
    const hash = (await storedHash(created.id))!;
    const salt = hash.split('$')[4]!;
    for (const answer of answers) {
      const text = JSON.stringify(answer);
      expect(text).not.toContain(PASSWORD);
      expect(text).not.toContain(salt);
      expect(text).not.toMatch(/scrypt|password/i);
    }
  });

  it('answers every refusal with the same 401, and counts one scrypt for an unknown agent', async () => {
    const alice = await createAgent('alice', PASSWORD);
    await createAgent('nopass');
    const dora = await createAgent('dora', PASSWORD);
    await request(app)
      .patch(`/nexus/v3/agents/${dora.id}`)
      .set(operatorOf(TENANT))
      .send({ enabled: false })
      .expect(200);
    await createAgent('olga', PASSWORD, OTHER);
    await request(app).delete(`/nexus/v3/provisioning/tenants/${OTHER}`).set(admin()).expect(200);

    const attempts = {
      'unknown tenant': { ccid: 'no-such-tenant', username: 'alice', password: PASSWORD },
      'unknown user': { ccid: TENANT, username: 'mallory', password: PASSWORD },
      'wrong password': { ccid: TENANT, username: 'alice', password: `${PASSWORD}!` },
      'disabled agent': { ccid: TENANT, username: 'dora', password: PASSWORD },
      'no password': { ccid: TENANT, username: 'nopass', password: PASSWORD },
      'disabled tenant': { ccid: OTHER, username: 'olga', password: PASSWORD },
      'another tenant': { ccid: OTHER, username: 'alice', password: PASSWORD },
    };
    const bodies = new Map<string, unknown>();
    const durations = new Map<string, number>();
    for (const [what, body] of Object.entries(attempts)) {
      const started = performance.now();
      const res = await signIn(body);
      durations.set(what, performance.now() - started);
      expect(res.status, what).toBe(401);
      expect(res.headers['retry-after'], what).toBeUndefined();
      bodies.set(what, res.body);
    }
    const first = bodies.get('unknown tenant');
    expect(first).toEqual({
      status: {
        code: 'NEXUS_ERR_INVALID_CREDENTIALS',
        message: 'The tenant, username or password is wrong, or the agent may not sign in',
      },
    });
    for (const [what, body] of bodies) expect(body, what).toEqual(first);
    // Without a scrypt an unknown user would answer in a millisecond or two; with it, as long as
    // a wrong password (within a wide margin: the machine is shared).
    expect(durations.get('unknown user')!).toBeGreaterThan(durations.get('wrong password')! / 4);
    expect(durations.get('unknown tenant')!).toBeGreaterThan(durations.get('wrong password')! / 4);

    // The right password of the right agent still works.
    const ok = await signIn({ ccid: TENANT, username: ' alice ', password: PASSWORD }).expect(200);
    expect(ok.body.data.agent.id).toBe(alice.id);
  });

  it('takes JSON only, and says which field of a malformed body is wrong', async () => {
    await createAgent('alice', PASSWORD);
    const form = await request(app)
      .post('/auth/v3/agent/token')
      .type('form')
      .send({ ccid: TENANT, username: 'alice', password: PASSWORD })
      .expect(400);
    expect(form.body.status).toMatchObject({
      code: 'NEXUS_ERR_VALIDATION',
      field: 'header.content-type',
    });
    const missing = await signIn({ ccid: TENANT, username: 'alice' }).expect(400);
    expect(missing.body.status).toMatchObject({
      code: 'NEXUS_ERR_VALIDATION',
      field: 'body.password',
    });
    const extra = await signIn({ ccid: TENANT, username: 'alice', password: PASSWORD, x: 1 });
    expect(extra.status).toBe(400);
    expect(extra.body.status.field).toBe('body.x');
  });

  it('throttles failures per account and per address; successes do not count', async () => {
    await createAgent('alice', PASSWORD);
    await createAgent('bob', PASSWORD);
    // Successes are not failures: more of them than the account's budget.
    for (let i = 0; i < 12; i++) {
      await signIn({ ccid: TENANT, username: 'bob', password: PASSWORD }).expect(200);
    }
    for (let i = 0; i < 10; i++) {
      await signIn({ ccid: TENANT, username: 'alice', password: 'wrong password!' }).expect(401);
    }
    const throttled = await signIn({ ccid: TENANT, username: 'alice', password: 'wrong again!' });
    expect(throttled.status).toBe(429);
    expect(throttled.body.status.code).toBe('NEXUS_ERR_SIGNIN_THROTTLED');
    const retryAfter = Number(throttled.headers['retry-after']);
    expect(retryAfter).toBeGreaterThan(800);
    expect(retryAfter).toBeLessThanOrEqual(900);
    // Throttled, the right password is not even checked.
    await signIn({ ccid: TENANT, username: 'alice', password: PASSWORD }).expect(429);
    // Another account from the same address is not.
    await signIn({ ccid: TENANT, username: 'bob', password: PASSWORD }).expect(200);

    // The address has 10 failures; 40 more (unknown users) spend its 50.
    for (let i = 0; i < 40; i++) {
      await signIn({ ccid: TENANT, username: `guess-${i}`, password: 'a guess!!!' }).expect(401);
    }
    const byAddress = await signIn({ ccid: TENANT, username: 'bob', password: PASSWORD });
    expect(byAddress.status).toBe(429);
    expect(byAddress.body.status.code).toBe('NEXUS_ERR_SIGNIN_THROTTLED');
    expect(Number(byAddress.headers['retry-after'])).toBeGreaterThan(0);
  });
});

describe('agent passwords', () => {
  it('are set and removed by operators of the tenant, and validated by field', async () => {
    const alice = await createAgent('alice');
    const path = `/nexus/v3/agents/${alice.id}/password`;
    await signIn({ ccid: TENANT, username: 'alice', password: PASSWORD }).expect(401);

    const invalid: [unknown, string][] = [
      [{ password: 'short' }, 'at least 10'],
      [{ password: 'x'.repeat(257) }, 'at most 256'],
      [{ password: ' \t'.repeat(10) }, 'whitespace'],
      [{ password: 1234567890 }, 'Expected string'],
      [{}, 'Required'],
    ];
    for (const [body, message] of invalid) {
      const res = await request(app)
        .put(path)
        .set(operatorOf(TENANT))
        .send(body as object);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.status.code).toBe('NEXUS_ERR_VALIDATION');
      expect(res.body.status.field).toBe('body.password');
      expect(res.body.status.message).toContain(message);
    }
    expect(await storedHash(alice.id)).toBeNull();

    const set = await request(app).put(path).set(operatorOf(TENANT)).send({ password: PASSWORD });
    expect(set.status).toBe(204);
    expect(set.text).toBe('');
    await signIn({ ccid: TENANT, username: 'alice', password: PASSWORD }).expect(200);

    // 256 characters are code points: 256 emoji (512 UTF-16 units) are allowed.
    const emoji = '\u{1F600}'.repeat(256);
    await request(app).put(path).set(operatorOf(TENANT)).send({ password: emoji }).expect(204);
    await signIn({ ccid: TENANT, username: 'alice', password: PASSWORD }).expect(401);
    await signIn({ ccid: TENANT, username: 'alice', password: emoji }).expect(200);

    // A tenant's own admin JWT may; another tenant's sees no such agent.
    const adminA = await idp.sign({ role: 'admin', ccid: TENANT });
    const adminB = await idp.sign({ role: 'admin', ccid: OTHER });
    await request(app)
      .put(path)
      .set('Authorization', `Bearer ${adminA}`)
      .send({ password: PASSWORD })
      .expect(204);
    await request(app)
      .put(path)
      .set('Authorization', `Bearer ${adminB}`)
      .send({ password: 'taken over!!' })
      .expect(404);
    await request(app).delete(path).set('Authorization', `Bearer ${adminB}`).expect(404);
    // Cluster credentials name the tenant with x-ccid; an agent cannot set passwords.
    await request(app).put(path).set(operatorOf(OTHER)).send({ password: PASSWORD }).expect(404);
    const token = (
      await signIn({ ccid: TENANT, username: 'alice', password: PASSWORD }).expect(200)
    ).body.data.token as string;
    await request(app)
      .put(path)
      .set('Authorization', `Bearer ${token}`)
      .send({ password: 'my own choice' })
      .expect(403);
    const unknown = await request(app)
      .put(`/nexus/v3/agents/${randomUUID()}/password`)
      .set(operatorOf(TENANT))
      .send({ password: PASSWORD })
      .expect(404);
    expect(unknown.body.status.code).toBe('NEXUS_ERR_NOT_FOUND');

    // Removed: password sign-in is off; the token already issued still works until it expires.
    await request(app).delete(path).set(operatorOf(TENANT)).expect(204);
    expect(await storedHash(alice.id)).toBeNull();
    const refused = await signIn({ ccid: TENANT, username: 'alice', password: PASSWORD });
    expect(refused.status).toBe(401);
    expect(refused.body.status.code).toBe('NEXUS_ERR_INVALID_CREDENTIALS');
    await request(app)
      .get('/nexus/v3/agent/me')
      .set('Authorization', `Bearer ${token}`)
      .expect(200);
    await request(app)
      .delete(`/nexus/v3/agents/${randomUUID()}/password`)
      .set(operatorOf(TENANT))
      .expect(404);
  });

  it('can be given at creation, validated before anything is stored', async () => {
    const bad = await request(app)
      .post('/nexus/v3/agents')
      .set(operatorOf(TENANT))
      .send({ username: 'carol', name: 'Carol', password: 'too short' })
      .expect(400);
    expect(bad.body.status).toMatchObject({ code: 'NEXUS_ERR_VALIDATION', field: 'body.password' });
    const list = await request(app).get('/nexus/v3/agents').set(operatorOf(TENANT)).expect(200);
    expect(list.body.data.items).toEqual([]);

    const carol = await createAgent('carol', PASSWORD);
    const res = await signIn({ ccid: TENANT, username: 'carol', password: PASSWORD }).expect(200);
    expect(res.body.data.agent.id).toBe(carol.id);
    // A taken username stores nothing, the password included.
    await request(app)
      .post('/nexus/v3/agents')
      .set(operatorOf(TENANT))
      .send({ username: 'carol', name: 'Other Carol', password: 'another password' })
      .expect(409);
    await signIn({ ccid: TENANT, username: 'carol', password: 'another password' }).expect(401);
  });
});

describe('agent token renewal', () => {
  it('gives a later token for a valid hub agent token, and refuses anything else', async () => {
    const alice = await createAgent('alice', PASSWORD);
    // A token of the same hub that expires in 2 minutes: renewal answers the configured TTL.
    const short = await new TokenService(h.config.secretKey, 120).signAgent(alice.id, TENANT);
    const renewed = await request(app)
      .post('/auth/v3/agent/renew')
      .set('Authorization', `Bearer ${short.token}`)
      .expect(200);
    expect(Object.keys(renewed.body.data).sort()).toEqual(['expiresAt', 'token']);
    expect(Date.parse(renewed.body.data.expiresAt)).toBeGreaterThan(Date.parse(short.expiresAt));
    expect(secondsFromNow(renewed.body.data.expiresAt)).toBeGreaterThan(TTL_SECONDS - 10);
    const me = await request(app)
      .get('/nexus/v3/agent/me')
      .set('Authorization', `Bearer ${renewed.body.data.token}`)
      .expect(200);
    expect(me.body.data).toMatchObject({
      id: alice.id,
      tokenExpiresAt: renewed.body.data.expiresAt,
    });

    const expired = await new TokenService(h.config.secretKey, -5).signAgent(alice.id, TENANT);
    const client = await new TokenService(h.config.secretKey).signClient({
      sessionId: randomUUID(),
      participantId: randomUUID(),
      tenant: TENANT,
    });
    const stranger = await new TokenService(Buffer.alloc(32, 7)).signAgent(alice.id, TENANT);
    const refused: Record<string, string | undefined> = {
      expired: `Bearer ${expired.token}`,
      'operator JWT with role agent': `Bearer ${await idp.sign({ role: 'agent', ccid: TENANT, sub: 'alice' })}`,
      'operator JWT with role admin': `Bearer ${await idp.sign({ role: 'admin', ccid: TENANT })}`,
      'admin token': `Bearer ${h.config.adminToken}`,
      'client token': `Bearer ${client}`,
      'another key': `Bearer ${stranger.token}`,
      none: undefined,
    };
    for (const [what, authorization] of Object.entries(refused)) {
      const req = request(app).post('/auth/v3/agent/renew');
      const res = await (authorization ? req.set('Authorization', authorization) : req);
      expect(res.status, what).toBe(401);
      expect(res.body.status.code, what).toBe('NEXUS_ERR_UNAUTHORIZED');
    }

    // A disabled agent cannot renew the token it still holds.
    await request(app)
      .patch(`/nexus/v3/agents/${alice.id}`)
      .set(operatorOf(TENANT))
      .send({ enabled: false })
      .expect(200);
    await request(app)
      .post('/auth/v3/agent/renew')
      .set('Authorization', `Bearer ${short.token}`)
      .expect(401);
  });
});

describe('agent socket token expiry', () => {
  it('tells a socket its token expired and disconnects it at the expiry', async () => {
    const alice = await createAgent('alice');
    const api = await h.serve();
    // Expires within 1 to 2 seconds (the expiry is a whole second).
    const short = await new TokenService(h.config.secretKey, 2).signAgent(alice.id, TENANT);
    const agent = connect(api.url, '/agent', { token: short.token });
    await agent.connected;
    const reason = new Promise<string>(resolve => agent.socket.once('disconnect', resolve));
    const expired = await eventually(
      () => agent.received.find(event => event.name === 'expired'),
      5_000,
      'the expired event',
    );
    expect(expired).toMatchObject({ code: 'NEXUS_ERR_TOKEN_EXPIRED' });
    const at = Date.now();
    expect(at).toBeGreaterThanOrEqual(Date.parse(short.expiresAt) - 50);
    expect(at).toBeLessThan(Date.parse(short.expiresAt) + 1_500);
    expect(await reason).toBe('io server disconnect');
    expect(agent.socket.connected).toBe(false);
    // The expired token opens no new socket either.
    const again = connect(api.url, '/agent', { token: short.token });
    await expect(again.connected).rejects.toMatchObject({
      data: { code: 'NEXUS_ERR_UNAUTHORIZED' },
    });
    again.socket.close();
  });

  it('moves the deadline on a fresh token of the same agent, not on another agent', async () => {
    const alice = await createAgent('alice');
    const bob = await createAgent('bob');
    const api = await h.serve();
    const first = await new TokenService(h.config.secretKey, 2).signAgent(alice.id, TENANT);
    const agent = connect(api.url, '/agent', { token: first.token });
    await agent.connected;

    const others = await new TokenService(h.config.secretKey, 60).signAgent(bob.id, TENANT);
    const refusedOther = await agent.socket
      .timeout(5_000)
      .emitWithAck('token', { token: others.token });
    expect(refusedOther.status).toMatchObject({ code: 'NEXUS_ERR_FORBIDDEN', field: 'token' });
    const refusedBad = await agent.socket.timeout(5_000).emitWithAck('token', { token: 'x.y.z' });
    expect(refusedBad.status.code).toBe('NEXUS_ERR_UNAUTHORIZED');
    const refusedEmpty = await agent.socket.timeout(5_000).emitWithAck('token', {});
    expect(refusedEmpty.status).toMatchObject({ code: 'NEXUS_ERR_VALIDATION', field: 'token' });

    const fresh = await new TokenService(h.config.secretKey, 5).signAgent(alice.id, TENANT);
    const accepted = await agent.socket.timeout(5_000).emitWithAck('token', { token: fresh.token });
    expect(accepted).toEqual({ status: { code: 0 }, data: { expiresAt: fresh.expiresAt } });

    // Past the first token's expiry the socket is still there (and works) …
    await new Promise(resolve =>
      setTimeout(resolve, Date.parse(first.expiresAt) - Date.now() + 700),
    );
    expect(agent.socket.connected).toBe(true);
    expect(agent.received.some(event => event.name === 'expired')).toBe(false);
    const presence = await agent.socket.timeout(5_000).emitWithAck('presence', { ready: true });
    expect(presence.status.code).toBe(0);
    // … until the fresh one's.
    await eventually(
      () => agent.received.some(event => event.name === 'expired') && !agent.socket.connected,
      8_000,
      'the socket to expire with the fresh token',
    );
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(fresh.expiresAt) - 50);
  });
});

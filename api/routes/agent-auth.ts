import type { Request } from 'express';
import type { DatabasePool } from 'slonik';
import { z } from 'zod';
import { findAgent, findAgentForSignIn } from '../../db/queries/agents.js';
import { AppError, isAppError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { RedisConnection } from '../../lib/redis.js';
import { authRejectedTotal } from '../../lib/metrics.js';
import { verifyPassword } from '../../lib/passwords.js';
import { presentedToken } from '../admin-auth.js';
import type { Authenticator } from '../auth/authenticator.js';
import { agentOf } from '../auth/principal.js';
import { SignInThrottle } from '../auth/sign-in-throttle.js';
import type { TokenService } from '../auth/tokens.js';
import { reply } from '../error-handler.js';
import { envelopeOf, type Api } from '../openapi.js';

/**
 * How agents get and keep their token themselves: sign-in with the password an operator set
 * (`POST /auth/v3/agent/token`), renewal of a valid token (`POST /auth/v3/agent/renew`), and who
 * the credentials are (`GET /nexus/v3/agent/me`). docs/permissions.md, "Agent sign-in".
 */

/**
 * A scrypt hash of a random password nobody knows, with the parameters of real ones: a sign-in
 * for an agent without a usable hash still costs one scrypt, so the answer's timing does not
 * tell an unknown tenant or username from a wrong password.
 */
const DUMMY_HASH =
  'scrypt$16384$8$1$4fAihckFd9Hu_9IkCngZ4A$G2ZTGetIE2vpJ71ej7HVFVwVVxAtUJrZ66ixR4V3Bys';

const tokenView = z.object({
  token: z.string(),
  expiresAt: z.string().openapi({ description: 'ISO-8601; the token is refused from then on' }),
});
const signedInAgent = z
  .object({ id: z.string().uuid(), username: z.string(), name: z.string(), tenant: z.string() })
  .openapi('SignedInAgent');

const invalidCredentials = () => new AppError('NEXUS_ERR_INVALID_CREDENTIALS');

/** Counts a refusal in `nexus_auth_rejected_total`, as the authenticated routes' are. */
async function counted<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (isAppError(error) && [401, 403, 429].includes(error.status)) {
      authRejectedTotal.inc({ code: error.code });
    }
    throw error;
  }
}

const requestLog = (req: Request, log: Logger) => (req as { log?: Logger }).log ?? log;

export function agentAuthRoutes({
  api,
  db,
  tokens,
  auth,
  redis,
  prefix,
  log,
}: {
  api: Api;
  db: DatabasePool;
  tokens: TokenService;
  auth: Authenticator;
  /** The producers' fail-fast connection: the failed sign-in counters. */
  redis: RedisConnection;
  /** The queue key prefix, under which the counters are kept. */
  prefix: string;
  log: Logger;
}): void {
  const throttle = new SignInThrottle(redis, prefix, log);
  api.route({
    method: 'post',
    path: '/auth/v3/agent/token',
    tag: 'Agent sign-in',
    summary: 'Sign an agent in with its password',
    description:
      'JSON only. Any failure (unknown tenant or username, disabled agent or tenant, no password set, wrong password) answers the same 401 `NEXUS_ERR_INVALID_CREDENTIALS`. Failures are limited per tenant and username and per client address (429 `NEXUS_ERR_SIGNIN_THROTTLED` with `Retry-After`); a success does not count.',
    auth: 'public',
    // A form post could be sent by any page the agent visits; JSON needs the page to be ours.
    verify(req) {
      if (!req.is('application/json')) {
        return Promise.reject(
          new AppError(
            'NEXUS_ERR_VALIDATION',
            'header.content-type: must be application/json',
            'header.content-type',
          ),
        );
      }
      return Promise.resolve();
    },
    body: z
      .object({
        ccid: z.string().min(1).max(128),
        username: z.string().trim().min(1).max(256),
        password: z.string().min(1).max(1_024),
      })
      .strict()
      .openapi('AgentSignIn'),
    responses: {
      200: {
        description: 'Signed in',
        schema: envelopeOf(tokenView.extend({ agent: signedInAgent })),
      },
    },
    handle: ({ body, req, res }) =>
      counted(async () => {
        const address = req.ip ?? req.socket.remoteAddress ?? 'unknown';
        const attempt = await throttle.begin(body.ccid, body.username, address);
        const row = await findAgentForSignIn(db, body.ccid, body.username);
        // One scrypt whatever the row: the timing tells nothing the answer does not.
        const matches = await verifyPassword(body.password, row?.password_hash ?? DUMMY_HASH);
        const refusal = !row
          ? 'unknown tenant or username'
          : row.password_hash === null
            ? 'no password set'
            : !matches
              ? 'wrong password'
              : !row.enabled
                ? 'agent disabled'
                : !row.tenant_enabled
                  ? 'tenant disabled'
                  : undefined;
        if (!row || refusal) {
          requestLog(req, log).info(
            { ccid: body.ccid, username: body.username, address, reason: refusal },
            'agent sign-in refused',
          );
          throw invalidCredentials();
        }
        await attempt.succeeded();
        const token = await tokens.signAgent(row.id, row.tenant_id);
        reply(res, 200, {
          ...token,
          agent: { id: row.id, username: row.username, name: row.name, tenant: row.tenant_id },
        });
      }),
  });

  api.route({
    method: 'post',
    path: '/auth/v3/agent/renew',
    tag: 'Agent sign-in',
    summary: "Renew an agent's token",
    description:
      'Needs a valid, unexpired agent token of the hub in `Authorization: Bearer <token>` (operator JWTs and client tokens are refused with 401), of an enabled agent of an enabled tenant. Answers a new token; the old one stays valid until it expires.',
    auth: 'public',
    responses: { 200: { description: 'Renewed', schema: envelopeOf(tokenView) } },
    handle: ({ req, res }) =>
      counted(async () => {
        const header = req.headers.authorization;
        const token = presentedToken(header) ?? header?.trim() ?? '';
        const agent = agentOf(await auth.authenticateAgentToken(token));
        reply(res, 200, await tokens.signAgent(agent.id, agent.tenant));
      }),
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/agent/me',
    tag: 'Agent',
    summary: 'The signed-in agent',
    description:
      '`tokenExpiresAt` is when the hub agent token presented expires; null for an operator JWT with role `agent`.',
    auth: 'nexus:agent:*',
    responses: {
      200: {
        description: 'The agent',
        schema: envelopeOf(
          signedInAgent.extend({
            tokenExpiresAt: z.string().nullable(),
          }),
        ),
      },
    },
    async handle({ principal, res }) {
      const agent = agentOf(principal);
      const row = await findAgent(db, agent.tenant, agent.id);
      // Authentication read the agent a moment ago; gone since, it is as unknown.
      if (!row) throw new AppError('NEXUS_ERR_UNAUTHORIZED', 'Unknown or disabled agent');
      reply(res, 200, {
        id: row.id,
        username: row.username,
        name: row.name,
        tenant: row.tenant_id,
        tokenExpiresAt: principal.tokenExpiresAt ?? null,
      });
    },
  });
}

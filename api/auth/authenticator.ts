import { createHash } from 'node:crypto';
import type { Request, RequestHandler } from 'express';
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose';
import type { DatabasePool } from 'slonik';
import { findApiKeyByHash, type ApiKeyAuthRow } from '../../db/queries/api-keys.js';
import { findAgent, findAgentByUsername } from '../../db/queries/agents.js';
import { findTenant } from '../../db/queries/tenants.js';
import type { Config } from '../../lib/config.js';
import { AppError, isAppError } from '../../lib/errors.js';
import { SharedCache, type InvalidationBus } from '../../lib/invalidation.js';
import type { Logger } from '../../lib/logger.js';
import { authRejectedTotal } from '../../lib/metrics.js';
import type { RedisConnection } from '../../lib/redis.js';
import { basicCredentials, presentedToken, secretsEqual } from '../admin-auth.js';
import { AGENT, CLUSTER, type Permission } from './permissions.js';
import { can, setPrincipal, type Principal } from './principal.js';
import { KeyRateLimiter } from './rate-limit.js';
import type { AgentToken, TokenService } from './tokens.js';

export interface AuthenticatorDeps {
  config: Config;
  tokens: TokenService;
  db: DatabasePool;
  bus: InvalidationBus;
  /** The producers' fail-fast connection: rate-limit counters. */
  redis: RedisConnection;
  log: Logger;
}

/** SHA-256 of a presented API key: what the database stores. */
export const hashApiKey = (key: string) => createHash('sha256').update(key, 'utf8').digest();

/** Operator roles a JWT may carry, and what each grants. */
const ROLE_PERMISSIONS: Record<string, readonly string[]> = {
  cluster: [CLUSTER],
  admin: ['nexus:provisioning:*'],
  agent: [AGENT],
};

const header = (req: Request, name: string) => {
  const value = req.headers[name];
  return typeof value === 'string' && value.length > 0 ? value : undefined;
};

/**
 * Authenticates requests: `x-api-key` (with `x-ccid` where sent), or `Authorization` carrying
 * the admin token or an operator JWT (`Bearer <token>`, or the bare token as the guide sends
 * it). API key lookups are cached per replica and dropped on every replica when a key or its
 * tenant changes (see {@link SharedCache}).
 */
export class Authenticator {
  private readonly keys: SharedCache<string, ApiKeyAuthRow>;
  private readonly limiter: KeyRateLimiter;
  private readonly jwks: ReturnType<typeof createRemoteJWKSet> | undefined;

  constructor(private readonly deps: AuthenticatorDeps) {
    this.keys = new SharedCache(
      deps.bus,
      { max: 50_000, ttlMs: deps.config.authCacheTtlMs },
      (change, _hash, row) =>
        (change.kind === 'apikey' && change.id === row.id) ||
        (change.kind === 'tenant' && change.id === row.tenant_id),
    );
    this.limiter = new KeyRateLimiter(deps.redis, deps.config.queues.prefix, deps.log);
    this.jwks = deps.config.jwt
      ? createRemoteJWKSet(new URL(deps.config.jwt.jwksUrl), {
          timeoutDuration: 5_000,
          cooldownDuration: 30_000,
        })
      : undefined;
  }

  /** Middleware: authenticates, checks `permission` (when given), counts the key's rate limit. */
  require(permission: Permission | undefined): RequestHandler {
    return async (req, res, next) => {
      try {
        const principal = await this.authenticate(req);
        if (permission && !can(principal, permission)) {
          throw new AppError(
            'NEXUS_ERR_FORBIDDEN',
            `The credentials lack the permission ${permission}`,
            principal.via === 'apikey' ? 'header.x-api-key' : 'header.authorization',
          );
        }
        if (principal.key) await this.limiter.consume(principal.key, res);
        setPrincipal(req, principal);
      } catch (error) {
        if (isAppError(error)) authRejectedTotal.inc({ code: error.code });
        throw error;
      }
      next();
    };
  }

  /** Authenticates a bare operator or agent token (the agent socket's handshake). */
  authenticateToken(token: string): Promise<Principal> {
    if (!token) {
      return Promise.reject(
        new AppError('NEXUS_ERR_UNAUTHORIZED', 'Missing credentials: send auth.token'),
      );
    }
    return this.fromToken(token, undefined);
  }

  /**
   * Authenticates a hub agent token only (renewal, a socket's fresh token): an operator JWT, a
   * client token, the admin token or an expired token is refused with 401.
   */
  async authenticateAgentToken(token: string): Promise<Principal & { tokenExpiresAt: string }> {
    const claims = token ? await this.deps.tokens.verifyAgent(token) : undefined;
    if (!claims) {
      throw new AppError(
        'NEXUS_ERR_UNAUTHORIZED',
        'Send a valid, unexpired agent token of the hub',
        'header.authorization',
      );
    }
    return this.hubAgentPrincipal(claims, undefined);
  }

  async authenticate(req: Request): Promise<Principal> {
    const apiKey = header(req, 'x-api-key');
    const ccid = header(req, 'x-ccid');
    if (apiKey !== undefined) return this.fromApiKey(apiKey, ccid);
    const authorization = header(req, 'authorization');
    // Aggregators' webhooks (SMS MO and receipts) send HTTP Basic: the tenant's ccid as the user
    // and an API key as the password. A Basic password that is the admin token stays an operator.
    const basic = basicCredentials(authorization);
    if (basic?.user && !secretsEqual(basic.password, this.deps.config.adminToken)) {
      return this.fromApiKey(basic.password, basic.user, 'header.authorization');
    }
    if (authorization !== undefined) return this.fromToken(authorization, ccid);
    throw new AppError(
      'NEXUS_ERR_UNAUTHORIZED',
      'Missing credentials: send x-api-key or Authorization',
    );
  }

  private async fromApiKey(
    key: string,
    ccid: string | undefined,
    field = 'header.x-api-key',
  ): Promise<Principal> {
    const invalid = (message: string) => new AppError('NEXUS_ERR_UNAUTHORIZED', message, field);
    if (key.length > 256) throw invalid('Invalid API key');
    const hash = hashApiKey(key);
    const row = await this.keys.get(hash.toString('hex'), () =>
      findApiKeyByHash(this.deps.db, hash),
    );
    if (!row) throw invalid('Invalid API key');
    if (row.revoked_at) throw invalid('The API key is revoked');
    if (!row.enabled) throw invalid('The API key is disabled');
    if (row.expires_at && Date.parse(row.expires_at) <= Date.now()) {
      throw invalid('The API key has expired');
    }
    if (row.tenant_id !== null && row.tenant_enabled === false) {
      throw new AppError('NEXUS_ERR_TENANT_DISABLED', undefined, field);
    }
    if (ccid !== undefined && row.tenant_id !== null && ccid !== row.tenant_id) {
      throw new AppError(
        'NEXUS_ERR_FORBIDDEN',
        field === 'header.x-api-key'
          ? 'x-ccid names another tenant than the API key'
          : 'the user names another tenant than the API key',
        field === 'header.x-api-key' ? 'header.x-ccid' : field,
      );
    }
    return {
      via: 'apikey',
      subject: `apikey:${row.id}`,
      tenant: row.tenant_id,
      permissions: row.permissions,
      key: { id: row.id, capacity: row.capacity, frequency: row.frequency },
      ccid: ccid ?? row.tenant_id ?? undefined,
    };
  }

  private async fromToken(authorization: string, ccid: string | undefined): Promise<Principal> {
    // `Bearer <token>`, the password of `Basic` (browsers), or the bare token as the guide sends it.
    const token = presentedToken(authorization) ?? authorization.trim();
    if (secretsEqual(token, this.deps.config.adminToken)) {
      return { via: 'admin-token', subject: 'admin', tenant: null, permissions: [CLUSTER], ccid };
    }
    const agentToken = await this.deps.tokens.verifyAgent(token);
    if (agentToken) return this.hubAgentPrincipal(agentToken, ccid);
    const jwt = this.deps.config.jwt;
    if (!jwt || !this.jwks || token.split('.').length !== 3) {
      throw new AppError('NEXUS_ERR_UNAUTHORIZED', 'Invalid token', 'header.authorization');
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.jwks, {
        issuer: jwt.issuer,
        audience: jwt.audience,
      }));
    } catch (error) {
      this.deps.log.info({ err: error }, 'operator token refused');
      throw new AppError('NEXUS_ERR_UNAUTHORIZED', 'Invalid token', 'header.authorization');
    }
    const roles = [payload[jwt.roleClaim]].flat().filter(role => typeof role === 'string');
    const permissions = [...new Set(roles.flatMap(role => ROLE_PERMISSIONS[role] ?? []))];
    const cluster = permissions.includes(CLUSTER);
    const tenantClaim = payload[jwt.tenantClaim];
    const tenant = typeof tenantClaim === 'string' && tenantClaim ? tenantClaim : null;
    if (roles.includes('agent') && tenant !== null && typeof payload.sub === 'string') {
      return this.agentPrincipal(tenant, { username: payload.sub }, ccid);
    }
    if (!cluster && tenant === null) {
      throw new AppError(
        'NEXUS_ERR_FORBIDDEN',
        `The token names no tenant (claim ${jwt.tenantClaim}) and is not a cluster token`,
        'header.authorization',
      );
    }
    return {
      via: 'jwt',
      subject: typeof payload.sub === 'string' ? payload.sub : 'jwt',
      tenant: cluster ? null : tenant,
      permissions,
      ccid: ccid ?? tenant ?? undefined,
    };
  }

  private async hubAgentPrincipal(
    claims: AgentToken,
    ccid: string | undefined,
  ): Promise<Principal & { tokenExpiresAt: string }> {
    const principal = await this.agentPrincipal(claims.tenant, { id: claims.sub }, ccid);
    return { ...principal, tokenExpiresAt: new Date(claims.exp * 1000).toISOString() };
  }

  /** An enabled agent of an enabled tenant, found by id (agent token) or username (JWT). */
  private async agentPrincipal(
    tenant: string,
    who: { id: string } | { username: string },
    ccid: string | undefined,
  ): Promise<Principal> {
    const agent =
      'id' in who
        ? await findAgent(this.deps.db, tenant, who.id)
        : await findAgentByUsername(this.deps.db, tenant, who.username);
    if (!agent || !agent.enabled) {
      throw new AppError(
        'NEXUS_ERR_UNAUTHORIZED',
        'Unknown or disabled agent',
        'header.authorization',
      );
    }
    const tenantRow = await findTenant(this.deps.db, tenant);
    if (!tenantRow?.enabled) {
      throw new AppError('NEXUS_ERR_TENANT_DISABLED', undefined, 'header.authorization');
    }
    if (ccid !== undefined && ccid !== tenant) {
      throw new AppError(
        'NEXUS_ERR_FORBIDDEN',
        'x-ccid names another tenant than the agent',
        'header.x-ccid',
      );
    }
    return {
      via: 'agent-token',
      subject: `agent:${agent.id}`,
      tenant,
      permissions: [AGENT],
      ccid: tenant,
      agent: { id: agent.id, name: agent.name },
    };
  }
}

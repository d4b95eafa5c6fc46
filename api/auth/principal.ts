import type { Request } from 'express';
import { AppError } from '../../lib/errors.js';
import { CLUSTER, grants, type Permission } from './permissions.js';

/** Who is calling, once authenticated. */
export interface Principal {
  /** How they authenticated. */
  readonly via: 'admin-token' | 'jwt' | 'apikey' | 'agent-token';
  /** For audit fields (`createdby`): `admin`, the JWT subject, or `apikey:<id>`. */
  readonly subject: string;
  /** The tenant the credential belongs to; null for cluster-wide credentials. */
  readonly tenant: string | null;
  readonly permissions: readonly string[];
  /** The API key, for rate limiting. */
  readonly key?: { readonly id: string; readonly capacity: number; readonly frequency: number };
  /** The tenant named by `x-ccid`, when sent. */
  readonly ccid?: string | undefined;
  /** An agent acting through the agent API (agent token, or an operator JWT with role agent). */
  readonly agent?: { readonly id: string; readonly name: string } | undefined;
  /**
   * When the hub agent token presented expires (ISO); undefined for every other credential (an
   * operator JWT's expiry is its issuer's business).
   */
  readonly tokenExpiresAt?: string | undefined;
}

/** The agent behind the credentials, or 403 when they are not an agent's. */
export function agentOf(principal: Principal): { id: string; name: string; tenant: string } {
  if (!principal.agent || principal.tenant === null) {
    throw new AppError('NEXUS_ERR_AGENT_REQUIRED', undefined, 'header.authorization');
  }
  return { ...principal.agent, tenant: principal.tenant };
}

export const isCluster = (principal: Principal) =>
  principal.tenant === null && principal.permissions.includes(CLUSTER);

export function can(principal: Principal, permission: Permission): boolean {
  return grants(principal.permissions, permission);
}

/**
 * Refuses (403) a principal acting on another tenant than its own. Cluster principals may act
 * on every tenant.
 */
export function assertTenant(principal: Principal, tenant: string): void {
  if (principal.tenant === null) return;
  if (principal.tenant !== tenant) {
    throw new AppError(
      'NEXUS_ERR_FORBIDDEN',
      'The credentials belong to another tenant',
      principal.via === 'apikey' ? 'header.x-api-key' : 'header.authorization',
    );
  }
}

/** The tenant a request acts on when its path names none: `x-ccid`, else the credential's. */
export function tenantOf(principal: Principal): string {
  const tenant = principal.ccid ?? principal.tenant;
  if (!tenant) {
    throw new AppError(
      'NEXUS_ERR_VALIDATION',
      'header.x-ccid: required with cluster credentials',
      'header.x-ccid',
    );
  }
  assertTenant(principal, tenant);
  return tenant;
}

const principals = new WeakMap<Request, Principal>();

export function setPrincipal(req: Request, principal: Principal): void {
  principals.set(req, principal);
}

export function principalOf(req: Request): Principal {
  const principal = principals.get(req);
  if (!principal) throw new Error('route has no authenticated principal');
  return principal;
}

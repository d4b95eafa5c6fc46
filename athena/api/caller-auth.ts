import { createHash } from 'node:crypto';
import type { Request } from 'express';
import { LRUCache } from 'lru-cache';
import type { AthenaConfig } from '../../lib/config.js';
import { AppError } from '../../lib/errors.js';

/**
 * Who may change a tenant's connector settings: whoever the hub lets provision that tenant. The
 * caller's `x-api-key` (or `Authorization: Bearer`) is shown to the hub with a request for the
 * tenant's services (`GET …/provisioning/services/{ccid}`, which needs
 * `nexus:provisioning:*` on it); its answer decides, and a yes is remembered for a minute. The
 * connector keeps no credentials of its own (the guide's `athena.nexus.timeout` bounds these
 * "access token validation" calls).
 */
export class CallerAuth {
  private readonly allowed = new LRUCache<string, true>({ max: 10_000, ttl: 60_000 });

  constructor(private readonly nexus: AthenaConfig['nexus']) {}

  async assertProvisioner(req: Request, tenant: string): Promise<void> {
    const apiKey = req.get('x-api-key');
    const bearer = req.get('authorization');
    if (!apiKey && !bearer) {
      throw new AppError(
        'NEXUS_ERR_UNAUTHORIZED',
        'Missing or invalid credentials',
        'header.x-api-key',
      );
    }
    const cacheKey = createHash('sha256')
      .update(`${apiKey ?? ''}\n${bearer ?? ''}\n${tenant}`)
      .digest('hex');
    if (this.allowed.has(cacheKey)) return;
    let status: number;
    try {
      const response = await fetch(
        `${this.nexus.url}${this.nexus.apiPrefix}/provisioning/services/${encodeURIComponent(tenant)}`,
        {
          headers: {
            ...(apiKey ? { 'x-api-key': apiKey } : {}),
            ...(bearer ? { authorization: bearer } : {}),
            'x-ccid': tenant,
          },
          signal: AbortSignal.timeout(this.nexus.timeoutMs),
        },
      );
      status = response.status;
      await response.body?.cancel();
    } catch {
      throw new AppError(
        'NEXUS_ERR_HUB_UNAVAILABLE',
        'The hub cannot check the credentials; retry',
      );
    }
    if (status === 200) {
      this.allowed.set(cacheKey, true);
      return;
    }
    if (status === 401) {
      throw new AppError(
        'NEXUS_ERR_UNAUTHORIZED',
        'Missing or invalid credentials',
        'header.x-api-key',
      );
    }
    if (status === 403 || status === 404) {
      throw new AppError(
        'NEXUS_ERR_FORBIDDEN',
        'These credentials may not provision this tenant',
        'header.x-api-key',
      );
    }
    throw new AppError('NEXUS_ERR_HUB_UNAVAILABLE', `The hub answered ${status}; retry`);
  }
}

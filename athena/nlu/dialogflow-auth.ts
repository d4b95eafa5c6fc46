import { createHash, createPrivateKey, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import { LRUCache } from 'lru-cache';
import { WorkFailure } from '../../lib/errors.js';
import {
  nluBadAnswer,
  nluJson,
  nluNotConfigured,
  nluRequest,
  type NluContext,
  type NluSettings,
} from './provider.js';

/**
 * Google service-account authentication for the Dialogflow adapters (ES and CX), as Google's
 * "OAuth 2.0 for Server to Server Applications" describes it: the adapter signs a JWT with the
 * service account's private key (RS256; `iss` = `sub` = `client_email`, `aud` = the token URL,
 * `scope`, `iat`, `exp` = `iat` + 3600, header `kid` = `private_key_id`), POSTs it to the token
 * endpoint as `application/x-www-form-urlencoded`
 * `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<jwt>`, and sends the
 * `access_token` it gets as `Authorization: Bearer` to the Dialogflow API until shortly before
 * its `expires_in`.
 *
 * Tokens are cached per key (client email, private key and token URL) in the process, and one
 * request fetches them however many turns wait for one. A 401 from the API drops the cached token:
 * the request is tried once more with a new one (the token may have been revoked), and a new
 * token that is refused too is a refusal (the account lacks access).
 */

/** Google's token endpoint, where the key's `token_uri` points. */
export const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';

/** Covers the Dialogflow API (its own scope, `…/auth/dialogflow`, is a subset). */
export const CLOUD_PLATFORM_SCOPE = 'https://www.googleapis.com/auth/cloud-platform';

const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

/** What the adapters use of a service account JSON key. */
export interface ServiceAccountKey {
  readonly clientEmail: string;
  /** PEM; read only when a token is fetched (once an hour), not on every turn. */
  readonly privateKeyPem: string;
  readonly privateKeyId: string | undefined;
  readonly tokenUri: string | undefined;
}

/**
 * The service account key of a tenant's settings: `secret.serviceAccount` (the key file's JSON,
 * as an object or as its text), or the key's fields directly in `secret` (`client_email`,
 * `private_key`, optional `private_key_id` and `token_uri`).
 */
export function serviceAccountOf(
  secret: NluSettings['secret'],
  provider: string,
): ServiceAccountKey {
  let fields: unknown = secret.serviceAccount ?? secret;
  if (typeof fields === 'string') {
    try {
      fields = JSON.parse(fields) as unknown;
    } catch {
      throw nluNotConfigured(`${provider}: secret.serviceAccount is not JSON`);
    }
  }
  const record = (typeof fields === 'object' && fields !== null ? fields : {}) as Record<
    string,
    unknown
  >;
  const text = (name: string) => {
    const value = record[name];
    return typeof value === 'string' && value !== '' ? value : undefined;
  };
  const clientEmail = text('client_email');
  const privateKeyPem = text('private_key');
  if (!clientEmail || !privateKeyPem) {
    throw nluNotConfigured(
      `${provider}: the service account key needs client_email and private_key (secret.serviceAccount)`,
    );
  }
  return {
    clientEmail,
    privateKeyPem,
    privateKeyId: text('private_key_id'),
    tokenUri: text('token_uri'),
  };
}

/**
 * The token URL: the settings' `data.tokenUrl` (tests point it at a local server), else the key's
 * `token_uri`, else Google's.
 */
export function tokenUrlOf(settings: NluSettings, key: ServiceAccountKey): string {
  const override = settings.data.tokenUrl;
  return typeof override === 'string' && override !== ''
    ? override
    : (key.tokenUri ?? GOOGLE_TOKEN_URL);
}

interface CachedToken {
  readonly token: string;
  /** When to stop using it (epoch ms): some minutes before Google's expiry. */
  readonly refreshAt: number;
}

/** Tokens (or their fetch in flight) by key; bounded, as tenants come and go. */
const tokens = new LRUCache<string, Promise<CachedToken>>({ max: 1_000 });

const cacheKeyOf = (key: ServiceAccountKey, tokenUrl: string, scope: string) =>
  createHash('sha256')
    .update(`${tokenUrl}\n${scope}\n${key.clientEmail}\n${key.privateKeyPem}`)
    .digest('hex');

/** Stop using a token this long before it expires (or at half its life, if shorter). */
const REFRESH_MARGIN_MS = 5 * 60_000;

async function fetchToken(
  ctx: NluContext,
  provider: string,
  key: ServiceAccountKey,
  tokenUrl: string,
  scope: string,
): Promise<CachedToken> {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key.privateKeyPem);
  } catch {
    throw nluNotConfigured(
      `${provider}: the service account's private_key is not a PEM private key`,
    );
  }
  const now = Math.floor(Date.now() / 1000);
  const assertion = await new SignJWT({ scope })
    .setProtectedHeader({
      alg: 'RS256',
      typ: 'JWT',
      ...(key.privateKeyId ? { kid: key.privateKeyId } : {}),
    })
    .setIssuer(key.clientEmail)
    .setSubject(key.clientEmail)
    .setAudience(tokenUrl)
    .setIssuedAt(now)
    .setExpirationTime(now + 3600)
    .sign(privateKey);
  const response = await nluRequest(ctx, `${provider} token endpoint`, tokenUrl, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/x-www-form-urlencoded',
      Accept: 'application/json',
    },
    body: new URLSearchParams({ grant_type: JWT_BEARER, assertion }).toString(),
  });
  const answer = nluJson(response.body, `${provider} token endpoint`) as {
    access_token?: unknown;
    expires_in?: unknown;
  } | null;
  const token = answer?.access_token;
  const expiresIn = answer?.expires_in;
  if (typeof token !== 'string' || token === '' || typeof expiresIn !== 'number') {
    throw nluBadAnswer(`${provider} token endpoint answered without access_token and expires_in`);
  }
  const lifeMs = Math.max(0, expiresIn * 1000);
  ctx.log.debug({ provider, expiresIn }, 'Google access token fetched');
  return { token, refreshAt: Date.now() + lifeMs - Math.min(REFRESH_MARGIN_MS, lifeMs / 2) };
}

/**
 * An access token for `key`: the cached one while it is fresh (`cached: true`), else a new one.
 * Concurrent callers share one fetch; a failed fetch is not cached.
 */
export async function googleAccessToken(
  ctx: NluContext,
  provider: string,
  key: ServiceAccountKey,
  tokenUrl: string,
  scope: string = CLOUD_PLATFORM_SCOPE,
): Promise<{ token: string; cached: boolean }> {
  const cacheKey = cacheKeyOf(key, tokenUrl, scope);
  const pending = tokens.get(cacheKey);
  if (pending) {
    const held = await pending.catch(() => undefined);
    if (held && held.refreshAt > Date.now()) return { token: held.token, cached: true };
    // Expired or failed: whoever finds it so first replaces it; the others share the new fetch.
    if (tokens.get(cacheKey) !== pending) {
      return googleAccessToken(ctx, provider, key, tokenUrl, scope);
    }
  }
  const fetching = fetchToken(ctx, provider, key, tokenUrl, scope);
  tokens.set(cacheKey, fetching);
  try {
    return { token: (await fetching).token, cached: false };
  } catch (error) {
    if (tokens.get(cacheKey) === fetching) tokens.delete(cacheKey);
    throw error;
  }
}

/** Forgets `token` (the API refused it), unless a newer token already replaced it. */
async function dropToken(key: ServiceAccountKey, tokenUrl: string, scope: string, token: string) {
  const cacheKey = cacheKeyOf(key, tokenUrl, scope);
  const pending = tokens.get(cacheKey);
  if (!pending) return;
  const held = await pending.catch(() => undefined);
  if (held?.token === token && tokens.get(cacheKey) === pending) tokens.delete(cacheKey);
}

/**
 * Whether `error` is {@link nluRequest}'s refusal of a 401. provider.ts keeps the status only in
 * the message (`<provider> answered 401: …`), so it is read from there.
 */
const isUnauthorized = (error: unknown, provider: string) =>
  error instanceof WorkFailure &&
  error.code === 'NEXUS_ERR_NLU_PROVIDER_REFUSED' &&
  error.message.startsWith(`${provider} answered 401:`);

/**
 * A JSON POST to a Google API with the service account's token (see the module comment for the
 * 401 rule). Errors are {@link nluRequest}'s.
 */
export async function googleApiRequest(
  ctx: NluContext,
  provider: string,
  auth: { key: ServiceAccountKey; tokenUrl: string; scope?: string },
  url: string,
  body: unknown,
): ReturnType<typeof nluRequest> {
  const scope = auth.scope ?? CLOUD_PLATFORM_SCOPE;
  for (let attempt = 1; ; attempt++) {
    const { token, cached } = await googleAccessToken(
      ctx,
      provider,
      auth.key,
      auth.tokenUrl,
      scope,
    );
    try {
      return await nluRequest(ctx, provider, url, {
        method: 'POST',
        headers: {
          Authorization: `Bearer ${token}`,
          'Content-Type': 'application/json; charset=utf-8',
          Accept: 'application/json',
        },
        body: JSON.stringify(body),
      });
    } catch (error) {
      if (!isUnauthorized(error, provider)) throw error;
      await dropToken(auth.key, auth.tokenUrl, scope, token);
      // A token fetched for this request and refused: the account, not the token, is the problem.
      if (!cached || attempt > 1) throw error;
      ctx.log.info({ provider }, 'Google refused a cached access token; fetching a new one');
    }
  }
}

import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { AppError } from '../lib/errors.js';

const digest = (value: string) => createHash('sha256').update(value).digest();

/** Constant-time comparison of two secrets of any length. */
export function secretsEqual(presented: string, expected: string): boolean {
  return timingSafeEqual(digest(presented), digest(expected));
}

/** The token in `Authorization: Bearer <token>`, or the password of `Authorization: Basic`. */
export function presentedToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const [scheme, value] = header.split(' ', 2);
  if (!value) return undefined;
  if (scheme?.toLowerCase() === 'bearer') return value.trim();
  if (scheme?.toLowerCase() === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon === -1 ? undefined : decoded.slice(colon + 1);
  }
  return undefined;
}

/** The user and password of an HTTP Basic `Authorization` header, if it is one. */
export function basicCredentials(
  header: string | undefined,
): { user: string; password: string } | undefined {
  const [scheme, value] = header?.split(' ', 2) ?? [];
  if (scheme?.toLowerCase() !== 'basic' || !value) return undefined;
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon === -1) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/**
 * Operator endpoints (undelivered admin, Bull Board) require the admin token, as a bearer token
 * or as the password of HTTP Basic (so a browser can open the dashboard). 401 otherwise.
 */
export function requireAdmin(adminToken: string): RequestHandler {
  return (req, res, next) => {
    const token = presentedToken(req.headers.authorization);
    if (token !== undefined && secretsEqual(token, adminToken)) {
      next();
      return;
    }
    res.setHeader('WWW-Authenticate', 'Basic realm="nexus-admin", charset="UTF-8"');
    next(
      new AppError(
        'NEXUS_ERR_UNAUTHORIZED',
        token === undefined ? 'Missing credentials' : 'Invalid credentials',
      ),
    );
  };
}

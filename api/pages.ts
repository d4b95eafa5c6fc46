import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type Express, type RequestHandler } from 'express';
import { AppError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { Api } from './openapi.js';

/**
 * The hub's pages (ui/, built by Vite into dist/ui): the agent pages under /ux/, the sign-in page
 * under /auth/, the operator console under /admin/ (beside the queue dashboard at /admin/queues,
 * mounted before). Served as static files with a Content-Security-Policy that allows only the
 * hub's own scripts, styles, fonts and connections (no inline script); the agent pages may be
 * framed by the hub itself and the agent desktops of NEXUS_UX_ALLOWED_ORIGINS, the console by no
 * one. The pages call the public API like any client.
 */

/** The paths the pages answer under (the guide's ingress routes them to the API). */
export const PAGE_PREFIXES = ['/ux', '/auth', '/admin'] as const;

/** Who may frame the pages under a prefix: the desktops the agent pages, no one the console. */
const framedBy = (prefix: (typeof PAGE_PREFIXES)[number], allowedOrigins: readonly string[]) =>
  prefix === '/admin' ? [] : ["'self'", ...allowedOrigins];

/** dist/ui beside the compiled code (dist/api/pages.js), or the repository's dist/ui under tsx. */
export function defaultPagesDirectory(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const parent = dirname(here);
  return basename(parent) === 'dist' ? join(parent, 'ui') : join(parent, 'dist', 'ui');
}

export function pagesPolicy(frameAncestors: readonly string[]): string {
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "font-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    `frame-ancestors ${frameAncestors.length > 0 ? frameAncestors.join(' ') : "'none'"}`,
  ].join('; ');
}

export interface PagesOptions {
  api: Api;
  allowedOrigins: readonly string[];
  directory?: string;
  log: Logger;
}

export function mountPages(app: Express, options: PagesOptions): void {
  const directory = options.directory ?? defaultPagesDirectory();
  const built = existsSync(join(directory, 'ux', 'conv.html'));
  if (!built) {
    options.log.warn(
      { directory },
      'the pages are not built (npm run build:ui); /ux/, /auth/ and /admin/ answer 404 until they are',
    );
  }
  const headers = (prefix: (typeof PAGE_PREFIXES)[number]): RequestHandler => {
    const policy = pagesPolicy(framedBy(prefix, options.allowedOrigins));
    return (_req, res, next) => {
      res.setHeader('Content-Security-Policy', policy);
      res.setHeader('X-Content-Type-Options', 'nosniff');
      res.setHeader('Referrer-Policy', 'same-origin');
      next();
    };
  };
  const config = { allowedOrigins: options.allowedOrigins };
  options.api.route({
    method: 'get',
    path: '/ux/config.json',
    tag: 'Operations',
    summary: "The agent pages' settings",
    description:
      'What the agent pages read before they ask the embedding desktop for a token: `allowedOrigins`, the origins whose `postMessage` they accept (NEXUS_UX_ALLOWED_ORIGINS). docs/pages.md.',
    auth: 'public',
    responses: { 200: { description: '`{allowedOrigins: string[]}`' } },
    handle({ res }) {
      res.setHeader('Cache-Control', 'no-cache');
      res.json(config);
    },
  });
  const files = express.static(directory, {
    extensions: ['html'],
    index: 'index.html',
    fallthrough: true,
    setHeaders(res, path) {
      // Hashed names never change; the pages themselves are checked at every load.
      res.setHeader(
        'Cache-Control',
        path.includes(join('ux', 'assets')) ? 'public, max-age=31536000, immutable' : 'no-cache',
      );
    },
  });
  for (const prefix of PAGE_PREFIXES) {
    app.use(prefix, headers(prefix), (req, res, next) => {
      if (!built) {
        next(new AppError('NEXUS_ERR_NOT_FOUND', `the pages are not built: ${req.originalUrl}`));
        return;
      }
      // express.static sees the path below the prefix; give it the whole one, and put it back
      // for the handlers after it when no file answers.
      const below = req.url;
      req.url = `${prefix}${below}`;
      files(req, res, error => {
        req.url = below;
        next(error);
      });
    });
  }
}

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import express, { type Express, type RequestHandler } from 'express';
import type { Queue } from 'bullmq';
import { AppError } from '../lib/errors.js';

/**
 * The queue dashboard (Bull Board) served entirely by the hub: its page loads nothing from
 * another origin (the UI's fonts, IBM Plex Sans and Mono, come from the `@fontsource` packages
 * under `<path>/nexus/`), and every answer carries {@link DASHBOARD_CSP}, so it works offline and
 * under a strict policy.
 */

/**
 * Only the hub's own origin; inline styles because the page's loading screen and the UI's
 * components set `style` attributes. The UI's config is an inline JSON block, which is data, not
 * a script, so `script-src 'self'` holds.
 */
export const DASHBOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "font-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** The font families and weights the UI asks for (its stylesheet names IBM Plex). */
const FONTS = [
  { family: 'ibm-plex-sans', weights: [400, 500, 600] },
  { family: 'ibm-plex-mono', weights: [400, 500] },
] as const;

const require = createRequire(import.meta.url);
const fontDirectory = (family: string) => dirname(require.resolve(`@fontsource/${family}`));

/** One stylesheet of every face, its `url(./files/…)` pointing at `fonts/<family>/…`. */
function fontStylesheet(): string {
  return FONTS.flatMap(({ family, weights }) =>
    weights.map(weight =>
      readFileSync(join(fontDirectory(family), `${weight}.css`), 'utf8').replaceAll(
        'url(./files/',
        `url(fonts/${family}/`,
      ),
    ),
  ).join('\n');
}

/** The page with its links to other origins (the font CDN) replaced by the local stylesheet. */
export function localisePage(html: string): string {
  return html
    .replace(/<link\b[^>]*\bhref="(?:https?:)?\/\/[^"]*"[^>]*>\s*/gi, '')
    .replace('</head>', '<link href="nexus/fonts.css" rel="stylesheet"></head>');
}

type Render = (
  path: string,
  options: object,
  callback: (error: Error | null, html?: string) => void,
) => void;

/** Mounts the dashboard at `path` behind `guard` (the admin token). */
export function mountDashboard(
  app: Express,
  path: string,
  queues: readonly Queue[],
  guard: RequestHandler,
): void {
  const board = new ExpressAdapter();
  board.setBasePath(path);
  createBullBoard({ queues: queues.map(queue => new BullMQAdapter(queue)), serverAdapter: board });
  const router = board.getRouter() as Express & { engines: Record<string, Render> };
  // The adapter renders the UI's own template; its output is rewritten, not a copy of it kept,
  // so an upgrade of the UI (new asset names) needs nothing here.
  const render = router.engines['.ejs'];
  if (!render) throw new Error('the Bull Board adapter has no ejs engine to wrap');
  router.engine('ejs', (file, options, callback) =>
    render(file, options, (error, html) =>
      callback(error, html === undefined ? undefined : localisePage(html)),
    ),
  );

  const stylesheet = fontStylesheet();
  const local = express.Router();
  local.get('/fonts.css', (_req, res) => {
    res.type('text/css').setHeader('Cache-Control', 'public, max-age=86400');
    res.send(stylesheet);
  });
  for (const { family } of FONTS) {
    local.use(
      `/fonts/${family}`,
      express.static(join(fontDirectory(family), 'files'), { maxAge: '7d' }),
    );
  }
  // Nothing else under /nexus: not the board's page either.
  local.use((req, _res, next) => {
    next(new AppError('NEXUS_ERR_NOT_FOUND', `no dashboard asset ${req.originalUrl}`));
  });

  app.use(
    path,
    guard,
    (_req, res, next) => {
      res.setHeader('Content-Security-Policy', DASHBOARD_CSP);
      next();
    },
    express.Router().use('/nexus', local),
    router,
  );
}

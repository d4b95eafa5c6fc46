import request from 'supertest';
import { describe, expect, it } from 'vitest';
import type { BuiltApp } from '../../api/app.js';
import { BULL_BOARD_PATH } from '../../api/app.js';
import { useHarness } from '../helpers/harness.js';

/**
 * The queue dashboard works offline and under a strict Content-Security-Policy: its page and
 * every asset the page and its stylesheets reference come from the hub itself, and each answers.
 */

const EXTERNAL = /^(?:[a-z][a-z0-9+.-]*:)?\/\//i;

/** `href` and `src` of the page's elements (not those of `<a>` links, which load nothing). */
const pageReferences = (html: string) =>
  [...html.matchAll(/<(link|script|img|base|iframe|source)\b[^>]*?\b(?:href|src)="([^"]*)"/gi)]
    .filter(match => match[1]?.toLowerCase() !== 'base')
    .map(match => match[2] as string);

/** `url(…)` and `@import` targets of a stylesheet, `data:` URIs left out. */
const cssReferences = (css: string) =>
  [
    ...[...css.matchAll(/url\(\s*['"]?([^'")]+)['"]?\s*\)/g)].map(match => match[1] as string),
    ...[...css.matchAll(/@import\s+['"]([^'"]+)['"]/g)].map(match => match[1] as string),
  ].filter(reference => !reference.startsWith('data:'));

describe('queue dashboard', () => {
  const h = useHarness();

  it('serves its page and every asset it references from the hub, under a self-only CSP', async () => {
    const app: BuiltApp = h().app();
    const admin = { Authorization: `Bearer ${h().config.adminToken}` };
    const page = await request(app).get(`${BULL_BOARD_PATH}/`).set(admin).expect(200);
    expect(page.type).toBe('text/html');
    const html = page.text;
    expect(html).toMatch(new RegExp(`<base href="${BULL_BOARD_PATH}/"`));

    // The policy allows the hub's own origin only (and inline styles the page needs).
    const csp = String(page.headers['content-security-policy']);
    expect(csp).toMatch(/default-src 'self'/);
    expect(csp).toMatch(/script-src 'self'(;|$)/);
    expect(csp).toMatch(/font-src 'self'(;|$)/);
    expect(csp).not.toMatch(/https?:|\*/);

    const references = pageReferences(html);
    expect(references.length).toBeGreaterThan(3);
    expect(references.filter(reference => EXTERNAL.test(reference))).toEqual([]);
    expect(html).not.toMatch(/fonts\.googleapis|fonts\.gstatic/);

    // Every asset, resolved against the page's base; stylesheets followed to what they load.
    const seen = new Set<string>();
    const queue = references.map(reference => new URL(reference, `http://hub${BULL_BOARD_PATH}/`));
    let fonts = 0;
    while (queue.length > 0) {
      const url = queue.shift() as URL;
      if (seen.has(url.pathname)) continue;
      seen.add(url.pathname);
      const res = await request(app).get(url.pathname).set(admin).buffer(true);
      expect(res.status, url.pathname).toBe(200);
      if (/\.woff2?$/.test(url.pathname)) fonts++;
      if (res.type === 'text/css') {
        const nested = cssReferences(res.text);
        expect(
          nested.filter(reference => EXTERNAL.test(reference)),
          url.pathname,
        ).toEqual([]);
        queue.push(...nested.map(reference => new URL(reference, url)));
      }
    }
    // The UI's fonts (IBM Plex Sans and Mono) come from the hub.
    expect(fonts).toBeGreaterThan(0);
    const stylesheet = await request(app).get(`${BULL_BOARD_PATH}/nexus/fonts.css`).set(admin);
    expect(stylesheet.text).toMatch(/font-family: 'IBM Plex Sans'/);
    expect(stylesheet.text).toMatch(/font-family: 'IBM Plex Mono'/);
  });

  it('still needs the admin token, for the page and its assets', async () => {
    const app = h().app();
    await request(app).get(`${BULL_BOARD_PATH}/`).expect(401);
    await request(app).get(`${BULL_BOARD_PATH}/nexus/fonts.css`).expect(401);
    await request(app)
      .get(`${BULL_BOARD_PATH}/nexus/fonts/ibm-plex-sans/no-such-file.woff2`)
      .set('Authorization', `Bearer ${h().config.adminToken}`)
      .expect(404);
    const missing = await request(app)
      .get(`${BULL_BOARD_PATH}/static/js/no-such-file.js`)
      .set('Authorization', `Bearer ${h().config.adminToken}`);
    expect(missing.status).toBeLessThan(500);
  });
});

import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { Api } from '../../api/openapi.js';
import { defaultPagesDirectory, mountPages } from '../../api/pages.js';
import { createLogger } from '../../lib/logger.js';
import { ADMIN_TOKEN, useHarness } from '../helpers/harness.js';

/**
 * The pages as the API serves them (dist/ui, built by `npm run build:ui`, which `npm ci` runs):
 * their paths, the Content-Security-Policy and caching, and what answers when they are missing.
 * The browser tests drive the pages themselves.
 */

const built = defaultPagesDirectory();

describe('the pages', () => {
  const h = useHarness({ NEXUS_UX_ALLOWED_ORIGINS: 'https://desktop.example.com' });

  it('is built by npm ci / npm run build:ui into dist/ui', () => {
    expect(existsSync(join(built, 'ux', 'conv.html'))).toBe(true);
    expect(existsSync(join(built, 'auth', 'index.html'))).toBe(true);
    expect(existsSync(join(built, 'admin', 'index.html'))).toBe(true);
  });

  it('serves /ux/conv, /auth/ and /admin/ with a policy that allows no inline script; the desktops may frame the agent pages, no one the console', async () => {
    const app = h().app();
    const pages = {
      '/ux/conv?iid=1b4e28ba-2fa1-11d2-883f-0016d3cca427': "'self' https://desktop.example.com",
      '/auth/': "'self' https://desktop.example.com",
      '/admin/': "'none'",
    };
    for (const [path, ancestors] of Object.entries(pages)) {
      const res = await request(app).get(path).expect(200);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect(res.headers['cache-control']).toBe('no-cache');
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      const policy = res.headers['content-security-policy'] as string;
      expect(policy).toContain("script-src 'self'");
      expect(policy).not.toContain('unsafe-inline');
      expect(policy.split('; ')).toContain(`frame-ancestors ${ancestors}`);
      // Every script is a file of the hub's origin: none inline.
      const html = res.text;
      expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
      for (const [, src] of html.matchAll(/<script[^>]*\bsrc="([^"]+)"/g)) {
        expect(src).toMatch(/^\/ux\/assets\//);
        const asset = await request(app).get(src!).expect(200);
        expect(asset.headers['content-type']).toMatch(/javascript/);
        expect(asset.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      }
    }
    await request(app).get('/auth').expect(200);
    const config = await request(app).get('/ux/config.json').expect(200);
    expect(config.body).toEqual({ allowedOrigins: ['https://desktop.example.com'] });
  });

  it('answers 404 in the envelope for a page or asset that does not exist, and leaves the queue dashboard alone', async () => {
    const app = h().app();
    for (const path of [
      '/ux/nothing',
      '/ux/assets/nothing.js',
      '/auth/nothing',
      '/admin/nothing',
      '/ux/../package.json',
    ]) {
      const res = await request(app).get(path).expect(404);
      expect(res.body.status.code).toBe('NEXUS_ERR_NOT_FOUND');
    }
    await request(app).get('/admin/queues').expect(401);
    await request(app)
      .get('/admin/queues')
      .set('Authorization', `Bearer ${ADMIN_TOKEN}`)
      .expect(200);
  });

  it("lets the widget call the chat REST API from a tenant's site (CORS without credentials), and nothing else", async () => {
    const app = h().app();
    for (const prefix of ['/nexus/v3/chat', '/chat/v3/chat']) {
      const preflight = await request(app)
        .options(`${prefix}/sessions`)
        .set('Origin', 'https://shop.example.com')
        .set('Access-Control-Request-Method', 'POST')
        .set('Access-Control-Request-Headers', 'content-type,x-api-key')
        .expect(204);
      expect(preflight.headers['access-control-allow-origin']).toBe('*');
      expect(preflight.headers['access-control-allow-headers']).toMatch(/x-api-key/);
      expect(preflight.headers['access-control-allow-credentials']).toBeUndefined();
      // The refusal of a bad key carries the header too, so the widget can read why.
      const refused = await request(app)
        .post(`${prefix}/sessions`)
        .set('Origin', 'https://shop.example.com')
        .set('x-api-key', 'not-a-key')
        .send({ data: { nickname: 'Ann' } });
      expect(refused.status).toBe(401);
      expect(refused.headers['access-control-allow-origin']).toBe('*');
    }
    // Other routes answer no cross-origin caller.
    const admin = await request(app)
      .options('/nexus/v3/provisioning/tenants')
      .set('Origin', 'https://shop.example.com')
      .set('Access-Control-Request-Method', 'POST');
    expect(admin.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('answers 404 naming the missing build when dist/ui is absent', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'nexus-no-ui-'));
    try {
      const app = express();
      mountPages(app, {
        api: new Api(app, undefined),
        allowedOrigins: [],
        directory: empty,
        log: createLogger('silent'),
      });
      app.use(
        (err: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
          res.status(404).json({ message: err.message });
        },
      );
      const res = await request(app).get('/ux/conv').expect(404);
      expect(res.body.message).toMatch(/the pages are not built/);
      expect(readdirSync(empty)).toEqual([]);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});

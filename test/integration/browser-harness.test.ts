import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GUIDE_SANDBOX,
  checkAccessibility,
  consoleErrors,
  framed,
  screenshot,
  useBrowser,
} from '../helpers/browser.js';

// The policy the hub's pages are served with: no inline script, nothing from elsewhere.
const CSP = "default-src 'self'; script-src 'self'";

const page = (title: string, body: string) =>
  '<!doctype html><html lang="en"><head><meta charset="utf-8">' +
  // Without it a phone lays the page out 980 px wide and shrinks it.
  '<meta name="viewport" content="width=device-width, initial-scale=1">' +
  `<title>${title}</title><script src="/greet.js" defer></script></head>` +
  `<body><main>${body}</main></body></html>`;

const GREETER =
  '<h1>Greeter</h1><label for="name">Your name</label> <input id="name" autocomplete="off">' +
  ' <button id="greet" type="button">Greet</button><p id="greeting" role="status"></p>';

const PAGES: Record<string, { type: string; body: string }> = {
  '/': { type: 'text/html', body: page('Greeter', GREETER) },
  '/inline': {
    type: 'text/html',
    body: page('Greeter', `${GREETER}<script>document.title = 'inline ran';</script>`),
  },
  '/bad': {
    type: 'text/html',
    body: page('Bad', '<h1>Bad</h1><img src="/logo.png"><button type="button"></button>'),
  },
  '/greet.js': {
    type: 'text/javascript',
    body:
      "document.getElementById('greet').addEventListener('click', () => {\n" +
      "  const name = document.getElementById('name').value.trim();\n" +
      "  document.getElementById('greeting').textContent = `Hello, ${name}!`;\n" +
      '});\n',
  },
  // A 1×1 transparent PNG.
  '/logo.png': {
    type: 'image/png',
    body: Buffer.from(
      'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=',
      'base64',
    ).toString('latin1'),
  },
};

/** Width and height from a PNG's header. */
async function pngSize(path: string): Promise<{ width: number; height: number }> {
  const png = await readFile(path);
  expect(png.subarray(1, 4).toString('ascii')).toBe('PNG');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

describe('the browser harness', () => {
  const browser = useBrowser();
  let server: Server;
  let origin: string;

  beforeAll(async () => {
    server = createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      // Chromium asks for one; a 404 would be a console error.
      const found = PAGES[path === '/favicon.ico' ? '/logo.png' : path];
      if (!found) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, {
        'content-type': `${found.type}; charset=utf-8`,
        'content-security-policy': CSP,
      });
      res.end(Buffer.from(found.body, 'latin1'));
    });
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise(resolve => server.close(resolve));
  });

  it('drives a page under a strict CSP without console errors', async () => {
    const { page } = browser();
    const errors = consoleErrors(page);
    await page.goto(`${origin}/`);
    await page.getByLabel('Your name').fill('Ada');
    await page.getByRole('button', { name: 'Greet' }).click();
    await expect.poll(() => page.textContent('#greeting')).toBe('Hello, Ada!');
    expect(errors).toEqual([]);
  });

  it('reports the CSP refusing an inline script, and an uncaught error', async () => {
    const { page } = browser();
    const errors = consoleErrors(page);
    await page.goto(`${origin}/inline`);
    expect(await page.title()).toBe('Greeter');
    await expect.poll(() => errors.join('\n')).toMatch(/Content Security Policy/);
    expect(errors.join('\n')).toContain("script-src 'self'");

    await page.evaluate(() =>
      setTimeout(() => void Promise.reject(new Error('left unhandled')), 0),
    );
    await page.evaluate(() => setTimeout(() => (globalThis as unknown as { no: () => 0 }).no(), 0));
    await expect.poll(() => errors.filter(error => error.startsWith('uncaught'))).toHaveLength(2);
    expect(errors.join('\n')).toMatch(/uncaught TypeError: .*no is not a function/);
    expect(errors.join('\n')).toMatch(/left unhandled/);
  });

  it('runs axe under the CSP that refuses it as a script tag', async () => {
    const { page } = browser();
    const errors = consoleErrors(page);
    await page.goto(`${origin}/`);
    // The policy refuses axe as an inline <script>...
    await page.addScriptTag({ content: 'globalThis.injected = true;' }).catch(() => undefined);
    expect(await page.evaluate(() => 'injected' in globalThis)).toBe(false);
    await expect.poll(() => errors.join('\n')).toMatch(/Content Security Policy/);
    // ...but not evaluated over the DevTools protocol: a clean page passes, and a bad one fails.
    expect(await checkAccessibility(page)).toEqual([]);
    expect(await page.evaluate(() => 'axe' in globalThis)).toBe(true);

    await page.goto(`${origin}/bad`);
    const violations = await checkAccessibility(page);
    expect(violations.join('\n')).toMatch(/^critical image-alt: .*\n {2}img: /m);
    expect(violations.join('\n')).toMatch(/^critical button-name: .*\n {2}button: /m);
  });

  it('embeds a page in the guide’s sandboxed iframe on another site', async () => {
    const { page } = browser();
    const errors = consoleErrors(page);
    const frame = await framed(page, `${origin}/`);
    expect(new URL(page.url()).hostname).toBe('localhost');
    expect(frame.url()).toBe(`${origin}/`);
    expect(await page.locator('iframe').getAttribute('sandbox')).toBe(GUIDE_SANDBOX);
    // allow-same-origin keeps the page's own origin, so its storage works.
    expect(await frame.evaluate(() => (globalThis as unknown as { origin: string }).origin)).toBe(
      origin,
    );

    await frame.getByLabel('Your name').fill('Grace');
    await frame.getByRole('button', { name: 'Greet' }).press('Enter');
    await expect.poll(() => frame.textContent('#greeting')).toBe('Hello, Grace!');
    expect(await checkAccessibility(frame)).toEqual([]);
    expect(errors).toEqual([]);

    // Errors inside the frame reach the collector too.
    await framed(page, `${origin}/inline`);
    await expect.poll(() => errors.join('\n')).toMatch(/Content Security Policy/);
  });

  it('keeps a sandbox without allow-scripts from running the page', async () => {
    const { page } = browser();
    const frame = await framed(page, `${origin}/`, 'allow-same-origin');
    await frame.getByLabel('Your name').fill('Edsger');
    await frame.getByRole('button', { name: 'Greet' }).click();
    // No script ran: nothing to wait for, so give a running script the time it would need.
    await page.waitForTimeout(200);
    expect(await frame.textContent('#greeting')).toBe('');
  });

  it('writes desktop and phone screenshots', async () => {
    const { page, newPage } = browser();
    const dir = await mkdtemp(join(tmpdir(), 'nexus-screenshots-'));
    try {
      await page.goto(`${origin}/`);
      await page.getByLabel('Your name').fill('Ada');
      const desktop = await screenshot(page, 'greeter', { dir });
      expect(desktop).toBe(join(dir, 'greeter.png'));
      expect(await pngSize(desktop)).toEqual({ width: 1280, height: 800 });

      // A desktop page shot as a phone is opened again in a phone context.
      const phone = await screenshot(page, 'greeter-phone', { dir, phone: true });
      expect(await pngSize(phone)).toEqual({ width: 750, height: 1480 });

      // A page already on a phone is shot as it is, touch input and all.
      const onPhone = await newPage({ phone: true });
      await onPhone.goto(`${origin}/`);
      await onPhone.getByLabel('Your name').fill('Lin');
      await onPhone.getByRole('button', { name: 'Greet' }).tap();
      await expect.poll(() => onPhone.textContent('#greeting')).toBe('Hello, Lin!');
      const tapped = await screenshot(onPhone, 'greeter-tapped', { dir, phone: true });
      expect(await pngSize(tapped)).toEqual({ width: 750, height: 1480 });
      expect(
        await onPhone.evaluate(() => (globalThis as unknown as { innerWidth: number }).innerWidth),
      ).toBe(375);

      await expect(screenshot(page, '../escape', { dir })).rejects.toThrow(/screenshot name/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

import { mkdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import axe from 'axe-core';
import {
  chromium,
  type Browser,
  type BrowserContext,
  type BrowserContextOptions,
  type Frame,
  type Page,
} from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';

/** Debian's Chromium (`apt-get install chromium`; `.ci/run` and test/global-setup.ts install it). */
export const CHROMIUM = '/usr/bin/chromium';

/** A font of Debian's `fonts-dejavu-core`, so that pages draw text the same on every machine. */
export const FONT = '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf';

/**
 * Headless, and quiet: no background downloads (component updates, safe-browsing lists, field
 * trials), so a test run reaches no other host than the ones it serves.
 */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  // Shared memory in /tmp: /dev/shm is small in containers, and Chromium crashes when it is full.
  '--disable-dev-shm-usage',
];

/** The sandbox the guide's agent desktop puts around the hub's /ux/ pages. */
export const GUIDE_SANDBOX =
  'allow-scripts allow-forms allow-popups allow-same-origin allow-downloads';

/** A desktop window. */
export const DESKTOP: BrowserContextOptions = { viewport: { width: 1280, height: 800 } };

/**
 * A phone, 375 CSS pixels wide. As on a real phone, a page without `<meta name="viewport"
 * content="width=device-width, initial-scale=1">` is laid out 980 px wide and shrunk.
 */
export const PHONE: BrowserContextOptions = {
  viewport: { width: 375, height: 740 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
};

/** Where {@link screenshot} writes unless told otherwise, for the README to show. */
export const SCREENSHOTS = resolve(
  dirname(fileURLToPath(import.meta.url)),
  '../../docs/screenshots',
);

/**
 * Playwright's wait for an element or a navigation, shorter than its own 30 s so that a page that
 * never shows what a test waits for fails the test with Playwright's message, well within the
 * test's timeout.
 */
const ACTION_TIMEOUT_MS = 10_000;

const phoneContexts = new WeakSet<BrowserContext>();

/** A headless Debian Chromium; {@link useBrowser} launches and closes one per test file. */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

/** A new context (its own cookies and storage) for a desktop window, or a phone. */
export async function newContext(
  browser: Browser,
  options: { phone?: boolean } & BrowserContextOptions = {},
): Promise<BrowserContext> {
  const { phone = false, ...rest } = options;
  const context = await browser.newContext({ ...(phone ? PHONE : DESKTOP), ...rest });
  context.setDefaultTimeout(ACTION_TIMEOUT_MS);
  if (phone) phoneContexts.add(context);
  return context;
}

/** What one test gets from {@link useBrowser}. */
export interface BrowserTest {
  /** The file's browser. */
  readonly browser: Browser;
  /** The test's own context (a desktop window), closed after the test. */
  readonly context: BrowserContext;
  /** A page in {@link BrowserTest.context}. */
  readonly page: Page;
  /**
   * Another page: in the test's context, or with `phone` (or any context options) in a new
   * context of its own, also closed after the test.
   */
  readonly newPage: (options?: { phone?: boolean } & BrowserContextOptions) => Promise<Page>;
}

/**
 * One Chromium per test file and a fresh context per test, all closed after. Returns a getter:
 * `const b = useBrowser(); await b().page.goto(url)`.
 */
export function useBrowser(): () => BrowserTest {
  let browser: Browser | undefined;
  let current: BrowserTest | undefined;
  let contexts: BrowserContext[] = [];
  beforeAll(async () => {
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    browser = undefined;
  });
  beforeEach(async () => {
    if (!browser) throw new Error('the browser did not start');
    const own = browser;
    const context = await newContext(own);
    contexts = [context];
    current = {
      browser: own,
      context,
      page: await context.newPage(),
      newPage: async (options = {}) => {
        if (Object.keys(options).length === 0) return context.newPage();
        const other = await newContext(own, options);
        contexts.push(other);
        return other.newPage();
      },
    };
  });
  afterEach(async () => {
    // Each step on its own, so that one failure does not leave the rest open.
    const closing = await Promise.allSettled([
      ...contexts.map(context => context.close()),
      closeHosts(),
    ]);
    contexts = [];
    current = undefined;
    const failed = closing.find(result => result.status === 'rejected');
    if (failed) throw failed.reason;
  });
  return () => {
    if (!current) throw new Error('browser used outside a test');
    return current;
  };
}

/**
 * Collects the page's uncaught errors and its console errors (Content-Security-Policy violations
 * among them), from every frame, from now on. The array fills as they happen; tests expect it
 * empty.
 */
export function consoleErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', error => errors.push(`uncaught ${error.name}: ${error.message}`));
  page.on('console', message => {
    if (message.type() !== 'error') return;
    const { url, lineNumber } = message.location();
    errors.push(url ? `${message.text()} (${url}:${lineNumber + 1})` : message.text());
  });
  return errors;
}

/** What {@link checkAccessibility} reports: the impacts a page must not have. */
const BLOCKING_IMPACTS = new Set(['serious', 'critical']);

/**
 * Runs axe-core on the document of a page or a frame and returns its serious and critical
 * violations, one readable entry each (empty when there are none).
 *
 * axe's source is evaluated over the DevTools protocol rather than added as a `<script>`: a page
 * whose Content-Security-Policy allows no inline script would refuse the tag, while protocol
 * evaluation is not subject to the page's policy. Frames inside the document are left out: check
 * each frame's own document by passing the frame.
 */
export async function checkAccessibility(target: Page | Frame): Promise<string[]> {
  const loaded = await target.evaluate(() => 'axe' in globalThis);
  if (!loaded) await target.evaluate(axe.source);
  const results = await target.evaluate(
    options => (globalThis as unknown as { axe: typeof axe }).axe.run(options),
    { iframes: false, resultTypes: ['violations'] } satisfies axe.RunOptions,
  );
  return results.violations
    .filter(violation => BLOCKING_IMPACTS.has(violation.impact ?? ''))
    .map(violation =>
      [
        `${violation.impact} ${violation.id}: ${violation.help} (${violation.helpUrl})`,
        ...violation.nodes.map(
          node =>
            `  ${node.target.join(' ')}: ${(node.failureSummary ?? '').replace(/\n\s*/g, ' ')}`,
        ),
      ].join('\n'),
    );
}

export interface ScreenshotOptions {
  /** 375×740 at twice the pixel density, as a phone; default a 1280×800 desktop window. */
  phone?: boolean;
  /** The folder to write to. @defaultValue {@link SCREENSHOTS} */
  dir?: string;
  /** The whole page rather than the window. @defaultValue false */
  fullPage?: boolean;
}

/**
 * Writes `<dir>/<name>.png` and returns its path. A phone shot of a page that is not already in a
 * phone context opens the page's URL again in one, with the page's cookies and local storage.
 */
export async function screenshot(
  page: Page,
  name: string,
  options: ScreenshotOptions = {},
): Promise<string> {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(name)) {
    throw new Error(`screenshot name ${JSON.stringify(name)}: use lowercase letters, digits, -`);
  }
  const dir = options.dir ?? SCREENSHOTS;
  await mkdir(dir, { recursive: true });
  const path = join(dir, `${name}.png`);
  const shoot = (target: Page) =>
    target.screenshot({ path, fullPage: options.fullPage ?? false, animations: 'disabled' });
  const phone = options.phone ?? false;
  if (phone === phoneContexts.has(page.context())) {
    await shoot(page);
    return path;
  }
  const browser = page.context().browser();
  if (!browser) throw new Error('screenshot: the page has no browser');
  const context = await newContext(browser, {
    phone,
    storageState: await page.context().storageState(),
  });
  try {
    const copy = await context.newPage();
    await copy.goto(page.url());
    await shoot(copy);
  } finally {
    await context.close();
  }
  return path;
}

const hosts = new Set<Server>();

function closeHost(server: Server): Promise<void> {
  if (!hosts.delete(server)) return Promise.resolve();
  return new Promise(resolve => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

function closeHosts(): Promise<void> {
  return Promise.all([...hosts].map(closeHost)).then(() => undefined);
}

const escapeAttribute = (value: string) =>
  value.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

export interface FramedOptions {
  /** The host page's port (a desktop origin the hub is configured to allow); a free one if unset. */
  port?: number;
  /** A script of the host page (the desktop's own code, e.g. handing a token by postMessage). */
  hostScript?: string;
}

/**
 * Loads `url` the way the agent's desktop embeds the hub's pages: in an iframe with the given
 * sandbox, on a host page of another site (localhost for a 127.0.0.1 URL, 127.0.0.1 otherwise),
 * served by a server of its own that closes with the page. Returns the loaded frame.
 */
export async function framed(
  page: Page,
  url: string,
  sandbox = GUIDE_SANDBOX,
  options: FramedOptions = {},
): Promise<Frame> {
  const hostName = new URL(url).hostname === '127.0.0.1' ? 'localhost' : '127.0.0.1';
  const html =
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Agent desktop</title>' +
    '<style>html,body{margin:0;height:100%}iframe{border:0;width:100%;height:100%}</style>' +
    `</head><body><iframe title="Hub" sandbox="${escapeAttribute(sandbox)}" ` +
    `src="${escapeAttribute(url)}"></iframe>` +
    (options.hostScript ? `<script>${options.hostScript}</script>` : '') +
    '</body></html>';
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(html);
  });
  await new Promise<void>(resolve => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  hosts.add(server);
  page.once('close', () => void closeHost(server));
  const { port } = server.address() as { port: number };
  await page.goto(`http://${hostName}:${port}/`);
  const frame = await (await page.waitForSelector('iframe')).contentFrame();
  if (!frame) throw new Error(`framed: the iframe for ${url} has no frame`);
  await frame.waitForLoadState('load');
  return frame;
}

import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EgressBlockedError, EgressGuard } from './egress.js';

/** A listener on loopback that counts every connection made to it. */
async function listen(handler: Parameters<typeof createServer>[1] = (_req, res) => res.end('ok')) {
  let connections = 0;
  const server: Server = createServer(handler);
  server.on('connection', () => connections++);
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { server, port, connections: () => connections };
}

describe('egress guard (SSRF)', () => {
  let canary: Awaited<ReturnType<typeof listen>>;
  let redirector: Awaited<ReturnType<typeof listen>>;

  beforeAll(async () => {
    canary = await listen();
    redirector = await listen((_req, res) => {
      res.writeHead(302, { location: `http://127.0.0.1:${canary.port}/` }).end();
    });
  });
  afterAll(() => {
    canary.server.close();
    redirector.server.close();
  });

  it('refuses every non-public target, and nothing reaches the canary', async () => {
    // Names resolve through this table: "internal.example" plays a public name pointing inside.
    const guard = new EgressGuard([], (hostname, _options, callback) => {
      const table: Record<string, { address: string; family: number }[]> = {
        localhost: [
          { address: '127.0.0.1', family: 4 },
          { address: '::1', family: 6 },
        ],
        'internal.example': [{ address: '10.1.2.3', family: 4 }],
        'rebind.example': [{ address: '127.0.0.1', family: 4 }],
      };
      callback(null, table[hostname] ?? [{ address: '127.0.0.1', family: 4 }]);
    });
    const port = canary.port;
    const matrix = [
      `http://127.0.0.1:${port}/`,
      `http://localhost:${port}/`,
      `http://[::1]:${port}/`,
      `http://[::ffff:127.0.0.1]:${port}/`,
      `http://10.0.0.1:${port}/`,
      `http://172.16.0.1:${port}/`,
      `http://192.168.1.1:${port}/`,
      `http://169.254.169.254/latest/meta-data/`,
      `http://100.64.0.1:${port}/`,
      `http://0.0.0.0:${port}/`,
      `http://2130706433:${port}/`, // 127.0.0.1 in decimal
      `http://0177.0.0.1:${port}/`, // in octal
      `http://0x7f.0.0.1:${port}/`, // in hex
      `http://internal.example:${port}/`,
      `http://rebind.example:${port}/`,
      `ftp://example.com/`,
      `file:///etc/passwd`,
    ];
    for (const url of matrix) {
      await expect(guard.request(url, { body: '{}' }), url).rejects.toBeInstanceOf(
        EgressBlockedError,
      );
    }
    expect(canary.connections()).toBe(0);
    guard.close();
  });

  it('passes allow-listed hosts and CIDRs, and never follows a redirect', async () => {
    const guard = new EgressGuard(['127.0.0.1/32']);
    const answer = await guard.request(`http://127.0.0.1:${redirector.port}/hook`, { body: '{}' });
    expect(answer.status).toBe(302);
    expect(canary.connections()).toBe(0);
    const direct = await guard.request(`http://localhost:${canary.port}/`, { method: 'GET' });
    expect(direct).toMatchObject({ status: 200, body: 'ok' });
    guard.close();
    const byName = new EgressGuard(['localhost']);
    expect(
      (await byName.request(`http://localhost:${canary.port}/`, { method: 'GET' })).status,
    ).toBe(200);
    byName.close();
  });

  it('bounds the whole exchange, not only idle gaps', async () => {
    // A receiver that sends its headers, then one byte every 50 ms for 3 s.
    const trickle = await listen((_req, res) => {
      res.writeHead(200);
      const timer = setInterval(() => res.write('.'), 50);
      setTimeout(() => {
        clearInterval(timer);
        res.end();
      }, 3_000);
      res.on('close', () => clearInterval(timer));
    });
    const guard = new EgressGuard(['127.0.0.1']);
    const started = Date.now();
    await expect(
      guard.request(`http://127.0.0.1:${trickle.port}/`, { body: '{}', timeoutMs: 300 }),
    ).rejects.toThrow(/within 300 ms/);
    expect(Date.now() - started).toBeLessThan(2_000);
    guard.close();
    trickle.server.closeAllConnections();
    trickle.server.close();
  });

  it("sends Host, the URL's credentials, one value per header name and the body's length", async () => {
    const seen: { url: string | undefined; headers: string[]; body: string }[] = [];
    const receiver = await listen((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      req.on('end', () => {
        seen.push({ url: req.url, headers: req.rawHeaders, body });
        res.end('ok');
      });
    });
    const guard = new EgressGuard(['127.0.0.1']);
    const url = `http://hub:p%40ss@127.0.0.1:${receiver.port}/hooks?x=1`;
    for (let i = 0; i < 2; i++) {
      const answer = await guard.request(url, {
        headers: { 'x-custom': 'first', 'Content-Type': 'application/json', 'X-Custom': 'last' },
        body: '{"é":1}',
      });
      expect(answer).toMatchObject({ status: 200, body: 'ok' });
    }
    expect(seen).toHaveLength(2);
    for (const request of seen) {
      expect(request.url).toBe('/hooks?x=1');
      expect(request.body).toBe('{"é":1}');
      const pairs = Object.fromEntries(
        request.headers.flatMap((value, i) =>
          i % 2 === 0 ? [[value.toLowerCase(), request.headers[i + 1]]] : [],
        ),
      );
      expect(pairs).toEqual({
        host: `127.0.0.1:${receiver.port}`,
        authorization: `Basic ${Buffer.from('hub:p@ss').toString('base64')}`,
        'x-custom': 'last',
        'content-type': 'application/json',
        'content-length': '8',
        connection: 'keep-alive',
      });
      expect(request.headers.filter(name => name.toLowerCase() === 'x-custom')).toHaveLength(1);
    }
    // One keep-alive connection for both; a header value that would split the request is refused.
    expect(receiver.connections()).toBe(1);
    await expect(
      guard.request(url, { headers: { 'X-Bad': 'a\r\nX-Injected: 1' } }),
    ).rejects.toThrow(/Invalid character in header content/);
    expect(seen).toHaveLength(2);
    guard.close();
    receiver.server.close();
  });

  it('classifies addresses', () => {
    const guard = new EgressGuard();
    for (const address of ['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111']) {
      expect(guard.allows(address), address).toBe(true);
    }
    for (const address of [
      '127.0.0.1',
      '10.0.0.1',
      '169.254.169.254',
      '100.64.0.1',
      '::1',
      'fe80::1',
      'fc00::1',
      '::ffff:10.0.0.1',
      '224.0.0.1',
      '0.0.0.0',
      '192.0.2.1',
      '198.18.0.1',
    ]) {
      expect(guard.allows(address), address).toBe(false);
    }
    guard.close();
  });
});

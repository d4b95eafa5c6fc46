import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * Outbound HTTP to addresses outside the hub's control (webhook targets, provider URLs) goes
 * through an {@link EgressGuard}: only http(s); every address the hostname resolves to is checked
 * when the connection is made (so a name that later resolves elsewhere, DNS rebinding, is checked
 * again), and only public unicast addresses pass — not loopback, private, link-local (cloud
 * metadata at 169.254.169.254), CGNAT, multicast, unspecified, reserved, documentation,
 * benchmarking, unique-local, or IPv4-mapped forms of those. An allow-list of hostnames and CIDRs
 * opens exceptions (tests run their receivers on loopback through it). Redirects are never
 * followed.
 */
export class EgressBlockedError extends Error {
  override readonly name = 'EgressBlockedError';
}

type Resolver = (
  hostname: string,
  options: LookupOptions & { all: true },
  callback: (error: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

export class EgressGuard {
  private readonly hosts = new Set<string>();
  private readonly ranges: [ipaddr.IPv4 | ipaddr.IPv6, number][] = [];
  private readonly httpAgent: HttpAgent;
  private readonly httpsAgent: HttpsAgent;

  constructor(
    allow: readonly string[] = [],
    private readonly resolve: Resolver = (hostname, options, callback) =>
      dnsLookup(hostname, options, callback),
    options: {
      /**
       * Idle keep-alive connections kept per destination. Keep it at the number of requests in
       * flight, or each burst closes the surplus and the next one connects again.
       */
      idleSockets?: number;
    } = {},
  ) {
    for (const entry of allow) {
      if (entry.includes('/')) this.ranges.push(ipaddr.parseCIDR(entry));
      else if (ipaddr.isValid(entry)) {
        this.ranges.push([ipaddr.process(entry), entry.includes(':') ? 128 : 32]);
      } else this.hosts.add(entry.toLowerCase());
    }
    const lookup = this.lookup.bind(this);
    const maxFreeSockets = options.idleSockets ?? 256;
    this.httpAgent = new HttpAgent({ keepAlive: true, maxFreeSockets, lookup });
    this.httpsAgent = new HttpsAgent({ keepAlive: true, maxFreeSockets, lookup });
  }

  /** Whether a connection to `address` (for `hostname`) is allowed. */
  allows(address: string, hostname?: string): boolean {
    if (hostname && this.hosts.has(hostname.toLowerCase())) return true;
    if (!ipaddr.isValid(address)) return false;
    const ip = ipaddr.process(address); // IPv4-mapped IPv6 becomes IPv4
    if (this.ranges.some(([range, bits]) => range.kind() === ip.kind() && ip.match(range, bits))) {
      return true;
    }
    return ip.range() === 'unicast';
  }

  /** Throws unless `url` is http(s) and, when it names an IP address, that address is allowed. */
  checkUrl(url: string): URL {
    let parsed: URL;
    try {
      parsed = new URL(url); // normalises decimal, octal and hex IPv4 forms
    } catch {
      throw new EgressBlockedError(`not a URL: ${url}`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new EgressBlockedError(`only http(s) URLs are allowed, not ${parsed.protocol}`);
    }
    const host = parsed.hostname.replace(/^\[|\]$/g, '');
    if (isIP(host) && !this.allows(host, host)) {
      throw new EgressBlockedError(`address ${host} is not public and not allow-listed`);
    }
    return parsed;
  }

  /**
   * One request through the guard: no redirects followed (a 3xx is returned as is), a timeout
   * for the whole exchange, the response body read up to `maxBodyBytes`.
   */
  request(
    url: string,
    init: {
      method?: string;
      headers?: Record<string, string>;
      body?: string | Buffer;
      timeoutMs?: number;
      maxBodyBytes?: number;
    },
  ): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
    let target: URL;
    try {
      target = this.checkUrl(url);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new EgressBlockedError(String(error)));
    }
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
    const agent = target.protocol === 'https:' ? this.httpsAgent : this.httpAgent;
    const limit = init.maxBodyBytes ?? 64 * 1024;
    const timeoutMs = init.timeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      // The whole exchange, not only idle gaps: a receiver trickling bytes is cut off too.
      const deadline = setTimeout(
        () => req.destroy(new Error(`no complete answer within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const settle =
        <T>(fn: (value: T) => void) =>
        (value: T) => {
          clearTimeout(deadline);
          fn(value);
        };
      // A known length lets the request go out in one write, without chunked encoding.
      const headers =
        init.body === undefined || hasHeader(init.headers, 'content-length')
          ? init.headers
          : { ...init.headers, 'Content-Length': String(Buffer.byteLength(init.body)) };
      const req = send(
        target,
        {
          method: init.method ?? 'POST',
          headers,
          agent,
          timeout: timeoutMs,
        },
        res => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size <= limit) chunks.push(chunk);
          });
          res.on('end', () =>
            settle(resolve)({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: Buffer.concat(chunks).toString('utf8'),
            }),
          );
          res.on('error', settle(reject));
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', settle(reject));
      req.end(init.body);
    });
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  /** The agents' DNS lookup: resolves, then keeps only allowed addresses (checked per connection). */
  private lookup(
    hostname: string,
    options: LookupOptions,
    callback: (
      error: NodeJS.ErrnoException | null,
      address: string | LookupAddress[],
      family?: number,
    ) => void,
  ): void {
    this.resolve(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, '');
      const allowed = addresses.filter(entry => this.allows(entry.address, hostname));
      if (allowed.length === 0) {
        return callback(
          new EgressBlockedError(
            `${hostname} resolves to ${addresses.map(a => a.address).join(', ')}: not public and not allow-listed`,
          ),
          '',
        );
      }
      if (options.all) return callback(null, allowed);
      const [first] = allowed as [LookupAddress];
      return callback(null, first.address, first.family);
    });
  }
}

function hasHeader(headers: Record<string, string> | undefined, name: string): boolean {
  return headers !== undefined && Object.keys(headers).some(key => key.toLowerCase() === name);
}

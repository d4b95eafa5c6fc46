import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { LRUCache } from 'lru-cache';

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

const HTTP_PROTOCOLS: readonly string[] = ['http:', 'https:'];
/** What a tenant may save: HTTP(S) endpoints and SMTP relays (whose connections are checked too). */
const SAVED_PROTOCOLS: readonly string[] = ['http:', 'https:', 'smtp:', 'smtps:'];

/** The destination did not answer (completely) within the request's timeout. */
export class EgressTimeoutError extends Error {
  override readonly name = 'EgressTimeoutError';
}

type Resolver = (
  hostname: string,
  options: LookupOptions & { all: true },
  callback: (error: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

/** A checked URL as `node:http` takes it, with the `Host` (and credentials) it sends. */
interface Destination {
  https: boolean;
  options: { protocol: string; hostname: string; port: string; path: string };
  host: string;
  authorization: string | undefined;
}

/**
 * The egress rules without a connection: the allow-list and the address checks. The API checks
 * the URLs tenants save with them ({@link EgressRules.checkSavedUrl}); the {@link EgressGuard}
 * checks every connection with them again.
 */
export class EgressRules {
  private readonly hosts = new Set<string>();
  private readonly ranges: [ipaddr.IPv4 | ipaddr.IPv6, number][] = [];

  constructor(allow: readonly string[] = []) {
    for (const entry of allow) {
      if (entry.includes('/')) this.ranges.push(ipaddr.parseCIDR(entry));
      else if (ipaddr.isValid(entry)) {
        this.ranges.push([ipaddr.process(entry), entry.includes(':') ? 128 : 32]);
      } else this.hosts.add(entry.toLowerCase());
    }
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

  /**
   * Throws unless `url` has one of `protocols` (http(s) unless given) and, when it names an IP
   * address, that address is allowed.
   */
  checkUrl(url: string, protocols: readonly string[] = HTTP_PROTOCOLS): URL {
    let parsed: URL;
    try {
      parsed = new URL(url); // normalises decimal, octal and hex IPv4 forms
    } catch {
      throw new EgressBlockedError(`not a URL: ${url}`);
    }
    if (!protocols.includes(parsed.protocol)) {
      throw new EgressBlockedError(
        protocols === HTTP_PROTOCOLS
          ? `only http(s) URLs are allowed, not ${parsed.protocol}`
          : `only ${protocols.map(p => p.replace(/:$/, '')).join(', ')} URLs are allowed, not ${parsed.protocol}`,
      );
    }
    const host = parsed.hostname.replace(/^\[|\]$/g, '');
    if (isIP(host) && !this.allows(host, host)) {
      throw new EgressBlockedError(`address ${host} is not public and not allow-listed`);
    }
    return parsed;
  }

  /**
   * The check of a URL when a tenant saves it, without DNS (a lookup at save time would be slow,
   * would let tenants probe the resolver, and proves nothing: the name may resolve elsewhere at
   * connect time, where it is checked anyway). {@link checkUrl} (http(s) and smtp(s)), and `localhost` or a
   * `*.localhost` name (always loopback, RFC 6761) passes only when the allow-list names it or
   * allows 127.0.0.1 or ::1.
   */
  checkSavedUrl(url: string): URL {
    const parsed = this.checkUrl(url, SAVED_PROTOCOLS);
    const host = parsed.hostname.toLowerCase().replace(/\.$/, '');
    if (
      (host === 'localhost' || host.endsWith('.localhost')) &&
      !this.allows('127.0.0.1', host) &&
      !this.allows('::1', host)
    ) {
      throw new EgressBlockedError(`${host} is loopback and not allow-listed`);
    }
    return parsed;
  }
}

export class EgressGuard extends EgressRules {
  /** Checked URLs by their text: hot destinations (webhook targets) are parsed once. */
  private readonly destinations = new LRUCache<string, Destination>({ max: 1_000 });
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
    super(allow);
    const lookup = this.lookup.bind(this);
    const maxFreeSockets = options.idleSockets ?? 256;
    this.httpAgent = new HttpAgent({ keepAlive: true, maxFreeSockets, lookup });
    this.httpsAgent = new HttpsAgent({ keepAlive: true, maxFreeSockets, lookup });
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
    let destination: Destination;
    try {
      destination = this.destination(url);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new EgressBlockedError(String(error)));
    }
    const send = destination.https ? httpsRequest : httpRequest;
    const agent = destination.https ? this.httpsAgent : this.httpAgent;
    const limit = init.maxBodyBytes ?? 64 * 1024;
    const timeoutMs = init.timeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      // The whole exchange, not only idle gaps: a receiver trickling bytes is cut off too.
      const deadline = setTimeout(
        () => req.destroy(new EgressTimeoutError(`no complete answer within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const settle =
        <T>(fn: (value: T) => void) =>
        (value: T) => {
          clearTimeout(deadline);
          fn(value);
        };
      const req = send(
        {
          ...destination.options,
          method: init.method ?? 'POST',
          headers: rawHeaders(destination, init.headers, init.body),
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
      req.on('timeout', () =>
        req.destroy(new EgressTimeoutError(`no answer within ${timeoutMs} ms`)),
      );
      req.on('error', settle(reject));
      req.end(init.body);
    });
  }

  /** `url` checked ({@link checkUrl}) and taken apart for `node:http`, cached by its text. */
  private destination(url: string): Destination {
    const cached = this.destinations.get(url);
    if (cached) return cached;
    const parsed = this.checkUrl(url);
    const destination: Destination = {
      https: parsed.protocol === 'https:',
      options: {
        protocol: parsed.protocol,
        hostname: parsed.hostname.replace(/^\[|\]$/g, ''),
        port: parsed.port,
        path: `${parsed.pathname}${parsed.search}`,
      },
      // The WHATWG form: the port only when it is not the scheme's default, IPv6 in brackets.
      host: parsed.host,
      authorization:
        parsed.username || parsed.password
          ? `Basic ${Buffer.from(
              `${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}`,
            ).toString('base64')}`
          : undefined,
    };
    this.destinations.set(url, destination);
    return destination;
  }

  /**
   * The first allowed address of `hostname` (an IP literal is checked as it is), for clients that
   * connect themselves (the SMTP transport): they connect to this address, so the check holds for
   * the connection made. Throws {@link EgressBlockedError} when no address is allowed.
   */
  resolveHost(hostname: string): Promise<string> {
    const host = hostname.replace(/^\[|\]$/g, '');
    if (isIP(host)) {
      return this.allows(host, host)
        ? Promise.resolve(host)
        : Promise.reject(
            new EgressBlockedError(`address ${host} is not public and not allow-listed`),
          );
    }
    return new Promise((resolve, reject) => {
      this.lookup(host, { all: false }, (error, address) => {
        if (error) reject(error);
        else resolve(address as string);
      });
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

/**
 * The request's headers as the flat list `node:http` writes as given (still validating each name
 * and value), which spares it a `setHeader` per header: `Host`, the URL's credentials, `headers`
 * (a later name replaces an earlier one whatever its case, as `setHeader` would) and, for a body,
 * its `Content-Length` unless given, so it goes out in one write without chunked encoding.
 */
function rawHeaders(
  destination: Destination,
  headers: Record<string, string> | undefined,
  body: string | Buffer | undefined,
): string[] {
  const byName = new Map<string, [string, string]>([['host', ['Host', destination.host]]]);
  if (destination.authorization) {
    byName.set('authorization', ['Authorization', destination.authorization]);
  }
  for (const name in headers) byName.set(name.toLowerCase(), [name, headers[name] as string]);
  if (body !== undefined && !byName.has('content-length')) {
    byName.set('content-length', ['Content-Length', String(Buffer.byteLength(body))]);
  }
  const flat: string[] = [];
  for (const [name, value] of byName.values()) flat.push(name, value);
  return flat;
}

import type { Logger } from '../lib/logger.js';
import { isCustomHeaderAllowed } from '../domain/service-catalogue.js';

/** Services whose refused headers were already reported (once per process each). */
const reported = new Set<string>();
const REPORTED_MAX = 10_000;

/**
 * The `header:<name>` entries of a stored service's data, as the hub adds them to its calls. The
 * API refuses hop-by-hop, framing and hub-set headers (`isCustomHeaderAllowed`), but a row stored
 * before that rule (or written past the API) may still carry one: it is dropped here, whatever its
 * case, and reported once per service. One entry per header name, case-insensitively (the last).
 */
export function storedCustomHeaders(
  data: Readonly<Record<string, unknown>>,
  service: { tenant: string; name: string },
  log: Logger | undefined,
): Record<string, string> {
  const headers = new Map<string, [string, string]>();
  const dropped: string[] = [];
  for (const [key, value] of Object.entries(data)) {
    if (!key.startsWith('header:') || typeof value !== 'string') continue;
    const name = key.slice('header:'.length);
    if (isCustomHeaderAllowed(name)) headers.set(name.toLowerCase(), [name, value]);
    else dropped.push(name);
  }
  if (dropped.length > 0) {
    const key = `${service.tenant}/${service.name}`;
    if (!reported.has(key)) {
      if (reported.size >= REPORTED_MAX) reported.clear();
      reported.add(key);
      log?.warn(
        { tenant: service.tenant, service: service.name, headers: dropped },
        'stored custom headers the hub does not send (hop-by-hop, framing or set by the hub): dropped; save the service again without them',
      );
    }
  }
  return Object.fromEntries(headers.values());
}

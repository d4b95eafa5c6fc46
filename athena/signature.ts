import { timingSafeEqual } from 'node:crypto';
import { signatureHeaders } from '../domain/webhook-signing.js';

/** How far a Standard Webhooks timestamp may be from now (the specification's suggestion). */
const TOLERANCE_S = 5 * 60;

function same(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

export interface SignedRequest {
  readonly body: Buffer;
  /** Header values by lowercase name. */
  header(name: string): string | undefined;
}

/**
 * Whether a delivery of the hub's webhook transport is signed with one of the secrets: its
 * `X-Hub-Signature-256`, else its `X-Hub-Signature` (the guide's scheme), else its Standard
 * Webhooks signature (`webhook-id`, `webhook-timestamp` within five minutes, one of the
 * `webhook-signature` entries). The expected values are computed as the hub signs
 * (`domain/webhook-signing.ts`) and compared in constant time.
 */
export function verifySignature(
  request: SignedRequest,
  secrets: readonly string[],
  now = Date.now(),
): boolean {
  const hub256 = request.header('x-hub-signature-256');
  const hub1 = request.header('x-hub-signature');
  const id = request.header('webhook-id');
  const timestamp = request.header('webhook-timestamp');
  const standard = request.header('webhook-signature');
  for (const secret of secrets) {
    if (hub256 || hub1) {
      const expected = signatureHeaders({
        id: 'unused',
        timestamp: 0,
        body: request.body,
        secrets: [secret],
        schemes: ['x-hub-signature', 'x-hub-signature-256'],
      });
      if (hub256 ? same(hub256, expected['X-Hub-Signature-256'] ?? '') : false) return true;
      if (!hub256 && hub1 && same(hub1, expected['X-Hub-Signature'] ?? '')) return true;
      continue;
    }
    if (!id || !timestamp || !standard || id.includes('.') || !/^\d{1,12}$/.test(timestamp)) {
      return false;
    }
    if (Math.abs(now / 1000 - Number(timestamp)) > TOLERANCE_S) return false;
    const expected =
      signatureHeaders({
        id,
        timestamp: Number(timestamp),
        body: request.body,
        secrets: [secret],
        schemes: ['standard-webhooks'],
      })['webhook-signature'] ?? '';
    if (standard.split(' ').some(entry => same(entry, expected))) return true;
  }
  return false;
}

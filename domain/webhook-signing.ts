import { createHmac } from 'node:crypto';

/** Signature schemes a webhook target may ask for (default: all). */
export const SIGNATURE_SCHEMES = [
  'x-hub-signature',
  'x-hub-signature-256',
  'standard-webhooks',
] as const;
export type SignatureScheme = (typeof SIGNATURE_SCHEMES)[number];

export interface SignInput {
  /** The delivery's stable id: the same on every retry (`webhook-id`). */
  id: string;
  /** This attempt's time, Unix seconds (`webhook-timestamp`). */
  timestamp: number;
  /** The exact bytes that will be sent. */
  body: string | Buffer;
  /** The current secret first, then those still valid during a rotation's grace period. */
  secrets: readonly string[];
  schemes?: readonly SignatureScheme[];
}

/**
 * Standard Webhooks keys are base64 (optionally prefixed `whsec_`), as the spec and its
 * libraries expect; receivers configure the same string.
 */
function standardKey(secret: string): Buffer {
  return Buffer.from(
    secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret,
    'base64',
  );
}

/**
 * The signature headers of one delivery attempt:
 * - `X-Hub-Signature: sha1=<hex HMAC-SHA1(body)>` (the guide's scheme) and
 *   `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(body)>`, with the current secret's bytes;
 * - Standard Webhooks `webhook-id`, `webhook-timestamp` and `webhook-signature`: `v1,<base64
 *   HMAC-SHA256("id.timestamp.body")>` for every valid secret, space-separated, so receivers
 *   verify with either key during a rotation.
 */
export function signatureHeaders(input: SignInput): Record<string, string> {
  const schemes = new Set<SignatureScheme>(input.schemes ?? SIGNATURE_SCHEMES);
  const [current] = input.secrets;
  if (current === undefined) throw new Error('a webhook needs at least one secret to be signed');
  if (input.id.includes('.')) throw new Error('a webhook id must not contain "."');
  const body = typeof input.body === 'string' ? Buffer.from(input.body, 'utf8') : input.body;
  const headers: Record<string, string> = {};
  if (schemes.has('x-hub-signature')) {
    headers['X-Hub-Signature'] = `sha1=${createHmac('sha1', current).update(body).digest('hex')}`;
  }
  if (schemes.has('x-hub-signature-256')) {
    headers['X-Hub-Signature-256'] =
      `sha256=${createHmac('sha256', current).update(body).digest('hex')}`;
  }
  if (schemes.has('standard-webhooks')) {
    const signed = Buffer.concat([Buffer.from(`${input.id}.${input.timestamp}.`, 'utf8'), body]);
    headers['webhook-id'] = input.id;
    headers['webhook-timestamp'] = String(input.timestamp);
    headers['webhook-signature'] = input.secrets
      .map(
        secret => `v1,${createHmac('sha256', standardKey(secret)).update(signed).digest('base64')}`,
      )
      .join(' ');
  }
  return headers;
}

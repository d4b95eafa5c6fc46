import { createHmac } from 'node:crypto';

/**
 * The signature of a callback URL the hub hands to a gateway that cannot authenticate its
 * callbacks (Kannel delivery reports): HMAC-SHA256 with the hub's secret key, 32 hex characters.
 */
export function callbackSignature(secretKey: Buffer, value: string): string {
  return createHmac('sha256', secretKey).update(`sms-callback:${value}`).digest('hex').slice(0, 32);
}

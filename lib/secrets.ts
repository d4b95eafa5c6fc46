import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { AppError, ERRORS } from './errors.js';

/**
 * Secrets at rest (service credentials, tenant tokens): AES-256-GCM under NEXUS_SECRET_KEY.
 *
 * A sealed value is the text `v1.<kid>.<iv>.<tag>.<ciphertext>` (base64url parts), where `kid`
 * names the key that sealed it: the first 8 hex characters of the key's SHA-256. Keys listed in
 * NEXUS_SECRET_KEYS_PREVIOUS still open what they sealed, so a key can be rotated without
 * downtime: deploy the new key with the old one as previous, run `npm run rotate-secrets`, then
 * drop the old key. `context` is bound as additional authenticated data (e.g. the tenant and
 * service name), so a sealed value copied to another row does not open.
 */
export class SecretBox {
  readonly currentKeyId: string;
  private readonly keys = new Map<string, Buffer>();

  constructor(current: Buffer, previous: readonly Buffer[] = []) {
    this.currentKeyId = keyId(current);
    for (const key of [current, ...previous]) {
      if (key.length !== 32) throw new Error('secret keys must be 32 bytes');
      if (!this.keys.has(keyId(key))) this.keys.set(keyId(key), key);
    }
  }

  seal(value: unknown, context: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key(this.currentKeyId), iv);
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const ciphertext = Buffer.concat([
      cipher.update(JSON.stringify(value), 'utf8'),
      cipher.final(),
    ]);
    return [
      'v1',
      this.currentKeyId,
      iv.toString('base64url'),
      cipher.getAuthTag().toString('base64url'),
      ciphertext.toString('base64url'),
    ].join('.');
  }

  /**
   * The value `sealed` holds. A value that does not open (sealed with a key this box does not
   * have, another context, tampered or not a sealed text at all) throws the coded
   * `NEXUS_ERR_SECRET_UNREADABLE`, which names the reason and keeps the original as `cause`.
   */
  open(sealed: string, context: string): unknown {
    try {
      return this.unseal(sealed, context);
    } catch (error) {
      const detail = error instanceof Error ? error.message : String(error);
      throw new AppError(
        'NEXUS_ERR_SECRET_UNREADABLE',
        `${ERRORS.NEXUS_ERR_SECRET_UNREADABLE.message} (${detail})`,
        undefined,
        { cause: error },
      );
    }
  }

  private unseal(sealed: string, context: string): unknown {
    const [version, kid, iv, tag, ciphertext] = sealed.split('.');
    if (version !== 'v1' || !kid || !iv || !tag || ciphertext === undefined) {
      throw new Error('not a sealed secret');
    }
    const decipher = createDecipheriv('aes-256-gcm', this.key(kid), Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(context, 'utf8'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    const plain = Buffer.concat([
      decipher.update(Buffer.from(ciphertext, 'base64url')),
      decipher.final(),
    ]);
    return JSON.parse(plain.toString('utf8'));
  }

  /** The id of the key that sealed `sealed`, without opening it. */
  static keyIdOf(sealed: string): string | undefined {
    return sealed.split('.')[1];
  }

  private key(kid: string): Buffer {
    const key = this.keys.get(kid);
    if (!key) {
      throw new Error(
        `secret sealed with key ${kid}, which is neither NEXUS_SECRET_KEY nor in NEXUS_SECRET_KEYS_PREVIOUS`,
      );
    }
    return key;
  }
}

export const keyId = (key: Buffer) => createHash('sha256').update(key).digest('hex').slice(0, 8);

/**
 * What a read shows of a secret: the same shape with every value replaced by `true` ("set"),
 * except `channelId`, which identifies an entry and is not secret.
 */
export function describeSecret(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(describeSecret);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([key, child]) => [
        key,
        key === 'channelId' ? child : describeSecret(child),
      ]),
    );
  }
  return value !== undefined && value !== null && value !== '';
}

import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * Password hashes: scrypt (RFC 7914) with a random 16-byte salt and a 32-byte key, stored as a
 * self-describing string `scrypt$<N>$<r>$<p>$<salt b64url>$<key b64url>`, so the parameters of
 * new hashes can change while old ones still verify. scrypt runs on libuv's thread pool, never
 * on the event loop. Passwords are compared in Unicode NFC, so the same password typed on two
 * keyboards (composed or decomposed accents) is the same password.
 */

/** The parameters of new hashes: N=2^14, r=8, p=1 (16 MiB, tens of milliseconds). */
export const SCRYPT_PARAMS = { N: 16_384, r: 8, p: 1 } as const;
const SALT_BYTES = 16;
const KEY_BYTES = 32;

/** The most a stored hash may ask for (N=2^20, r=16, p=4): a hostile row cannot exhaust memory. */
const LIMITS = { N: 1 << 20, r: 16, p: 4 };

function derive(
  password: string,
  salt: Buffer,
  keyLength: number,
  params: { N: number; r: number; p: number },
): Promise<Buffer> {
  // scrypt needs 128·N·r bytes; Node refuses above `maxmem` (32 MiB by default).
  const options: ScryptOptions = { ...params, maxmem: 128 * params.N * params.r * 2 + 1024 };
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, keyLength, options, (error, key) =>
      error ? reject(error) : resolve(key),
    );
  });
}

/** A new hash of `password` with a fresh salt and {@link SCRYPT_PARAMS}. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, KEY_BYTES, SCRYPT_PARAMS);
  const { N, r, p } = SCRYPT_PARAMS;
  return ['scrypt', N, r, p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

interface StoredHash {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  key: Buffer;
}

const B64URL = /^[A-Za-z0-9_-]+$/;

function parseHash(stored: string): StoredHash | undefined {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return undefined;
  const [N, r, p] = parts
    .slice(1, 4)
    .map(part => (/^\d{1,8}$/.test(part ?? '') ? Number(part) : 0));
  const [salt, key] = parts.slice(4).map(part => part ?? '');
  if (!N || !r || !p || !salt || !key || !B64URL.test(salt) || !B64URL.test(key)) return undefined;
  // N a power of two above 1, as scrypt requires; within the limits above.
  if (N < 2 || (N & (N - 1)) !== 0 || N > LIMITS.N || r > LIMITS.r || p > LIMITS.p) {
    return undefined;
  }
  const decoded = {
    N,
    r,
    p,
    salt: Buffer.from(salt, 'base64url'),
    key: Buffer.from(key, 'base64url'),
  };
  return decoded.key.length >= 16 && decoded.key.length <= 64 ? decoded : undefined;
}

/**
 * Whether `password` is the one `stored` was made from. A stored value that is not a hash of
 * this format never verifies (and throws nothing); the comparison takes the same time wherever
 * the keys differ.
 */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const hash = parseHash(stored);
  if (!hash) return false;
  const key = await derive(password, hash.salt, hash.key.length, hash);
  return timingSafeEqual(key, hash.key);
}

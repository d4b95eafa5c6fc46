import { scrypt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SCRYPT_PARAMS, hashPassword, verifyPassword } from './passwords.js';

describe('password hashes', () => {
  it('are scrypt with N=16384, r=8, p=1, a 16-byte salt and a 32-byte key, described in the string', async () => {
    const stored = await hashPassword('correct horse battery');
    const [scheme, N, r, p, salt, key, ...rest] = stored.split('$');
    expect([scheme, N, r, p]).toEqual(['scrypt', '16384', '8', '1']);
    expect(rest).toEqual([]);
    expect(Buffer.from(salt!, 'base64url')).toHaveLength(16);
    expect(Buffer.from(key!, 'base64url')).toHaveLength(32);
    // The key is scrypt's own, recomputed here from the parts.
    const expected = await new Promise<Buffer>((resolve, reject) =>
      scrypt(
        'correct horse battery',
        Buffer.from(salt!, 'base64url'),
        32,
        SCRYPT_PARAMS,
        (error, derived) => (error ? reject(error) : resolve(derived)),
      ),
    );
    expect(Buffer.from(key!, 'base64url').equals(expected)).toBe(true);
  });

  it('verify the password they were made from, and no other', async () => {
    const stored = await hashPassword('correct horse battery');
    expect(await verifyPassword('correct horse battery', stored)).toBe(true);
    expect(await verifyPassword('correct horse batterY', stored)).toBe(false);
    expect(await verifyPassword('', stored)).toBe(false);
  });

  it('salt every hash: the same password twice gives two different strings', async () => {
    const [a, b] = await Promise.all([
      hashPassword('same password'),
      hashPassword('same password'),
    ]);
    expect(a).not.toBe(b);
    expect(await verifyPassword('same password', b)).toBe(true);
  });

  it('verify hashes made with other parameters, read from the string', async () => {
    const salt = Buffer.from('0123456789abcdef');
    const key = await new Promise<Buffer>((resolve, reject) =>
      scrypt('older password', salt, 32, { N: 1024, r: 4, p: 2 }, (error, derived) =>
        error ? reject(error) : resolve(derived),
      ),
    );
    const stored = `scrypt$1024$4$2$${salt.toString('base64url')}$${key.toString('base64url')}`;
    expect(await verifyPassword('older password', stored)).toBe(true);
    expect(await verifyPassword('older passwort', stored)).toBe(false);
  });

  it('compare in Unicode NFC: a composed and a decomposed accent are one password', async () => {
    const stored = await hashPassword('caf\u00e9 au lait');
    expect(await verifyPassword('cafe\u0301 au lait', stored)).toBe(true);
  });

  it('never verify a malformed or hostile stored value, and do not throw on one', async () => {
    const good = await hashPassword('correct horse battery');
    const [, , , , salt, key] = good.split('$');
    const hostile = [
      '',
      'plain text password',
      `bcrypt$16384$8$1$${salt}$${key}`,
      `scrypt$16384$8$1$${salt}`,
      `scrypt$16383$8$1$${salt}$${key}`, // N not a power of two
      `scrypt$${2 ** 24}$8$1$${salt}$${key}`, // N beyond the limit (memory)
      `scrypt$16384$64$1$${salt}$${key}`,
      `scrypt$16384$8$1$${salt}$not base64!`,
      `scrypt$16384$8$1$${salt}$${key}$extra`,
    ];
    for (const stored of hostile) {
      expect(await verifyPassword('correct horse battery', stored), stored).toBe(false);
    }
  });
});

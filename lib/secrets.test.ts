import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AppError } from './errors.js';
import { SecretBox, describeSecret, keyId } from './secrets.js';

describe('SecretBox', () => {
  const key = randomBytes(32);

  it('round-trips a value, never showing it in the sealed text', () => {
    const box = new SecretBox(key);
    const sealed = box.seal({ password: 'hunter2-clear' }, 't1/mGageSMS');
    expect(sealed).toMatch(new RegExp(`^v1\\.${keyId(key)}\\.`));
    expect(sealed).not.toContain('hunter2');
    expect(box.open(sealed, 't1/mGageSMS')).toEqual({ password: 'hunter2-clear' });
    expect(box.seal('x', 'c')).not.toBe(box.seal('x', 'c'));
  });

  it('refuses another context, a tampered text and an unknown key', () => {
    const box = new SecretBox(key);
    const sealed = box.seal('secret', 't1/SMS');
    expect(() => box.open(sealed, 't2/SMS')).toThrow();
    const parts = sealed.split('.');
    parts[4] = Buffer.from('tampered').toString('base64url');
    expect(() => box.open(parts.join('.'), 't1/SMS')).toThrow();
    expect(() => new SecretBox(randomBytes(32)).open(sealed, 't1/SMS')).toThrow(
      /neither NEXUS_SECRET_KEY nor in NEXUS_SECRET_KEYS_PREVIOUS/,
    );
  });

  it('throws the coded NEXUS_ERR_SECRET_UNREADABLE (500) for whatever does not open', () => {
    const box = new SecretBox(key);
    const sealed = box.seal('secret', 't1/SMS');
    const parts = sealed.split('.');
    parts[4] = Buffer.from('tampered').toString('base64url');
    for (const [value, context] of [
      [sealed, 't2/SMS'],
      [parts.join('.'), 't1/SMS'],
      ['not sealed', 't1/SMS'],
    ] as const) {
      let thrown: unknown;
      try {
        box.open(value, context);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(AppError);
      expect(thrown).toMatchObject({ code: 'NEXUS_ERR_SECRET_UNREADABLE', status: 500 });
      expect((thrown as Error).cause).toBeInstanceOf(Error);
    }
  });

  it('opens values sealed with a previous key and seals with the current one', () => {
    const old = new SecretBox(key);
    const sealed = old.seal({ a: 1 }, 'ctx');
    const next = new SecretBox(randomBytes(32), [key]);
    expect(next.open(sealed, 'ctx')).toEqual({ a: 1 });
    expect(SecretBox.keyIdOf(next.seal({ a: 1 }, 'ctx'))).toBe(next.currentKeyId);
    expect(SecretBox.keyIdOf(sealed)).not.toBe(next.currentKeyId);
  });
});

describe('describeSecret', () => {
  it('shows which fields are set, keeping channel ids', () => {
    expect(
      describeSecret({
        username: 'u',
        password: '',
        channels: [{ channelId: '1650', webhook: { secret: 's' }, api: {} }],
      }),
    ).toEqual({
      username: true,
      password: false,
      channels: [{ channelId: '1650', webhook: { secret: true }, api: {} }],
    });
  });
});

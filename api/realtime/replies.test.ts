import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AppError, ERRORS } from '../../lib/errors.js';
import { failure, handshakeError, refusal } from './replies.js';

describe('socket replies', () => {
  it('code a refusal as the HTTP error body does', () => {
    expect(refusal('NEXUS_ERR_VALIDATION', 'seq must be a positive integer', 'seq')).toEqual({
      status: {
        code: 'NEXUS_ERR_VALIDATION',
        message: 'seq must be a positive integer',
        field: 'seq',
      },
    });
    expect(refusal('NEXUS_ERR_NOT_FOUND', undefined)).toEqual({
      status: { code: 'NEXUS_ERR_NOT_FOUND', message: ERRORS.NEXUS_ERR_NOT_FOUND.message },
    });
  });

  it('code anything thrown, never leaking an internal message', () => {
    expect(failure(new Error('relation "x" does not exist'))).toEqual({
      status: { code: 'NEXUS_ERR_INTERNAL', message: ERRORS.NEXUS_ERR_INTERNAL.message },
    });
    expect(failure(new AppError('NEXUS_ERR_CHAT_ENDED')).status.code).toBe('NEXUS_ERR_CHAT_ENDED');
    expect(
      (handshakeError(new AppError('AUTHENTICATION_REQUIRED')) as Error & { data: unknown }).data,
    ).toEqual({ code: 'AUTHENTICATION_REQUIRED' });
  });

  it('are built here only: the namespaces build no error reply by hand', () => {
    for (const file of ['customer-namespace.ts', 'agent-namespace.ts', 'index.ts', 'feed.ts']) {
      const source = readFileSync(new URL(file, import.meta.url), 'utf8');
      expect(source, file).not.toMatch(/status:\s*\{\s*code:/);
      expect(source, file).not.toMatch(/emit\(\s*'error'/);
    }
  });
});

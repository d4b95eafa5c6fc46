import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AppError, ERRORS } from '../../lib/errors.js';
import { failure, handshakeError, onRequest, refusal, type Ack } from './replies.js';

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

  it('take the acknowledgement only when the client sent one, last (found by the fuzz run)', () => {
    const socket = new EventEmitter();
    const heard: [unknown, Ack | undefined][] = [];
    onRequest(socket, 'read', (payload, ack) => heard.push([payload, ack]));
    const ack: Ack = () => undefined;
    socket.emit('read', { seq: 1 }, ack);
    // A second payload where the ack would be: not called as a function.
    socket.emit('read', { seq: 1 }, { seq: 2 });
    socket.emit('read', ack);
    socket.emit('read');
    socket.emit('read', 'a', 'b', ack);
    expect(heard).toEqual([
      [{ seq: 1 }, ack],
      [{ seq: 1 }, undefined],
      [undefined, ack],
      [undefined, undefined],
      ['a', ack],
    ]);
  });

  it('are all listened for through onRequest: no handler takes its ack on trust', () => {
    for (const file of ['customer-namespace.ts', 'agent-namespace.ts']) {
      const source = readFileSync(new URL(file, import.meta.url), 'utf8');
      expect(source, file).not.toMatch(/socket\.on\([^)]*ack/);
    }
  });
});

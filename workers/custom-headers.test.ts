import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../lib/logger.js';
import { storedCustomHeaders } from './custom-headers.js';

function logSink() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) {
        if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  return { lines, log: createLogger('info', stream) };
}

describe('storedCustomHeaders', () => {
  it('keeps allowed headers, drops reserved ones whatever their case, and reports a service once', () => {
    const sink = logSink();
    const data = {
      url: 'ignored',
      'header:X-Custom': 'kept',
      'header:Transfer-Encoding': 'chunked',
      'header:content-type': 'text/plain',
      'header:PROXY-Authorization': 'x',
      'header:x-hub-signature-256': 'forged',
      'header:X-Number': 7,
    };
    const service = { tenant: 'unit-headers', name: 'Async' };
    expect(storedCustomHeaders(data, service, sink.log)).toEqual({ 'X-Custom': 'kept' });
    expect(storedCustomHeaders(data, service, sink.log)).toEqual({ 'X-Custom': 'kept' });
    expect(sink.lines).toHaveLength(1);
    expect(sink.lines[0]).toMatchObject({
      level: 'warn',
      tenant: 'unit-headers',
      service: 'Async',
      headers: ['Transfer-Encoding', 'content-type', 'PROXY-Authorization', 'x-hub-signature-256'],
    });
    // Another service is reported on its own; a service with nothing dropped is not.
    storedCustomHeaders(data, { tenant: 'unit-headers', name: 'Other' }, sink.log);
    storedCustomHeaders({ 'header:X-A': 'a' }, { tenant: 'unit-headers', name: 'Clean' }, sink.log);
    expect(sink.lines).toHaveLength(2);
  });

  it('sends one header per name, case-insensitively', () => {
    expect(
      storedCustomHeaders(
        { 'header:X-Tenant': 'a', 'header:x-tenant': 'b' },
        { tenant: 't', name: 's' },
        undefined,
      ),
    ).toEqual({ 'x-tenant': 'b' });
  });
});

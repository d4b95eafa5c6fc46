import { createServer, type Server, type Socket } from 'node:net';

/** One request as it came over the wire: its header lines in order, as sent. */
export interface RawRequest {
  readonly requestLine: string;
  /** [name, value] pairs, names as sent, duplicates kept. */
  readonly headers: readonly (readonly [string, string])[];
  readonly body: string;
}

export interface RawReceiver {
  readonly url: string;
  readonly requests: RawRequest[];
  close(): Promise<void>;
}

/** The values of a header, whatever the case of its name. */
export const headerValues = (request: RawRequest, name: string): string[] =>
  request.headers
    .filter(([key]) => key.toLowerCase() === name.toLowerCase())
    .map(([, value]) => value);

/**
 * An HTTP/1.1 receiver on loopback that records the header lines exactly as sent (no parser
 * merging or refusing anything: a request carrying both `Transfer-Encoding` and `Content-Length`
 * is recorded too) and answers each request `answer` (status 200), closing the connection.
 */
export async function startRawReceiver(
  answer: (request: RawRequest) => string = () => '{}',
): Promise<RawReceiver> {
  const requests: RawRequest[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer(socket => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffer = Buffer.alloc(0);
    let answered = false;
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (answered) return;
      const end = buffer.indexOf('\r\n\r\n');
      if (end === -1) return;
      const [requestLine = '', ...lines] = buffer.subarray(0, end).toString('latin1').split('\r\n');
      const headers = lines.map(line => {
        const colon = line.indexOf(':');
        return [line.slice(0, colon), line.slice(colon + 1).trim()] as const;
      });
      const rest = buffer.subarray(end + 4).toString('utf8');
      const request = { requestLine, headers };
      const length = headers.find(([name]) => name.toLowerCase() === 'content-length')?.[1];
      const chunked = headers.some(
        ([name, value]) => name.toLowerCase() === 'transfer-encoding' && /chunked/i.test(value),
      );
      // The body: chunked (up to the last chunk), else Content-Length bytes.
      if (chunked ? !rest.includes('0\r\n\r\n') : Buffer.byteLength(rest) < Number(length ?? 0)) {
        return;
      }
      answered = true;
      const received: RawRequest = { ...request, body: rest };
      requests.push(received);
      const body = answer(received);
      socket.end(
        `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    });
  });
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>(resolve => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';

/** One request a receiver got. */
export interface ReceivedRequest {
  readonly at: number;
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

export interface Answer {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

export interface Receiver {
  readonly url: string;
  readonly port: number;
  readonly requests: ReceivedRequest[];
  /** Changes how the receiver answers from now on. */
  answer(fn: (request: ReceivedRequest, index: number) => Answer | Promise<Answer>): void;
  close(): Promise<void>;
}

/**
 * A webhook receiver on loopback, as a subscriber's server would run: records every request
 * (headers and the raw body) and answers as told (200 by default).
 */
export async function startReceiver(
  answer: (request: ReceivedRequest, index: number) => Answer | Promise<Answer> = () => ({
    status: 200,
  }),
): Promise<Receiver> {
  let respond = answer;
  const requests: ReceivedRequest[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const received: ReceivedRequest = {
        at: Date.now(),
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      const index = requests.push(received) - 1;
      void Promise.resolve(respond(received, index)).then(reply => {
        res.writeHead(reply.status, reply.headers);
        res.end(reply.body ?? '');
      });
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    answer(fn) {
      respond = fn;
    },
    close: () =>
      new Promise<void>(resolve => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

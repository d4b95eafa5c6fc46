import { Agent, request } from 'node:http';

const agent = new Agent({ keepAlive: true, maxSockets: 128 });

export interface HttpResult {
  status: number;
  body: string;
}

/** One HTTP request on a keep-alive pool: cheaper per request than fetch, like a load tool. */
export function http(
  method: string,
  url: string,
  headers: Record<string, string>,
  body?: string,
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, agent }, res => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

export async function json<T>(
  method: string,
  url: string,
  headers: Record<string, string>,
  body?: unknown,
  expect = [200, 201, 202],
): Promise<T> {
  const result = await http(
    method,
    url,
    { 'content-type': 'application/json', ...headers },
    body === undefined ? undefined : JSON.stringify(body),
  );
  if (!expect.includes(result.status)) {
    throw new Error(`${method} ${url} answered ${result.status}: ${result.body.slice(0, 300)}`);
  }
  return JSON.parse(result.body) as T;
}

/**
 * The hub's public HTTP API as the pages call it: JSON in, the `{status, data}` envelope out.
 * An answer that is not a success throws an {@link ApiError} with the hub's code, message and,
 * for a validation error, the field.
 */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

interface Envelope<T> {
  status?: { code: number | string; message?: string; field?: string };
  data?: T;
}

export interface RequestOptions {
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  body?: unknown;
  token?: string;
  /** More request headers (the operator console names a cluster operator's tenant in `x-ccid`). */
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** Calls `path` on the hub's origin; resolves with the envelope's `data` (or the bare body). */
export async function call<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { ...options.headers, Accept: 'application/json' };
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  if (options.token) headers.Authorization = `Bearer ${options.token}`;
  let res: Response;
  try {
    res = await fetch(path, {
      method: options.method ?? (options.body === undefined ? 'GET' : 'POST'),
      headers,
      body: options.body === undefined ? null : JSON.stringify(options.body),
      credentials: 'omit',
      signal: options.signal ?? null,
    });
  } catch (error) {
    if ((error as Error).name === 'AbortError') throw error;
    throw new ApiError(0, 'NETWORK', 'The hub cannot be reached.');
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let body: Envelope<T> | undefined;
  try {
    body = text ? (JSON.parse(text) as Envelope<T>) : undefined;
  } catch {
    body = undefined;
  }
  if (!res.ok) {
    const status = body?.status;
    throw new ApiError(
      res.status,
      typeof status?.code === 'string' ? status.code : `HTTP_${res.status}`,
      status?.message ?? res.statusText,
      status?.field,
    );
  }
  return (body && 'data' in body ? body.data : body) as T;
}

import { call } from './api.js';

/**
 * How an agent page holds its agent token: in the tab's sessionStorage (never in a URL, never in
 * a cookie), from the sign-in page (/auth/) or handed in by the embedding desktop with
 * `postMessage({type: 'nexus:agent-token', token})` from one of the origins the hub allows
 * (NEXUS_UX_ALLOWED_ORIGINS, read from /ux/config.json). The token is renewed before it expires.
 */

export interface AgentSession {
  token: string;
  /** ISO time. */
  expiresAt: string;
}

export interface UxConfig {
  allowedOrigins: string[];
}

const KEY = 'nexus.agent-session';
/** Renew this long before the token expires. */
const RENEW_BEFORE_MS = 5 * 60_000;

/**
 * The tab's sessionStorage, or undefined where the browser denies it: a page framed by another
 * site under third-party storage blocking. The session then lives in memory for the page's
 * lifetime (the desktop hands the token in again after a reload).
 */
function storage(): Storage | undefined {
  try {
    const store = window.sessionStorage;
    store.getItem(KEY);
    return store;
  } catch {
    return undefined;
  }
}
let inMemory: AgentSession | undefined;

export function readSession(): AgentSession | undefined {
  let stored: AgentSession | null | undefined = inMemory;
  try {
    const kept = storage()?.getItem(KEY);
    if (kept) stored = JSON.parse(kept) as AgentSession | null;
  } catch {
    // unreadable: sign in again
  }
  if (stored && typeof stored.token === 'string' && Date.parse(stored.expiresAt) > Date.now()) {
    return stored;
  }
  return undefined;
}

export function storeSession(session: AgentSession): void {
  inMemory = session;
  storage()?.setItem(KEY, JSON.stringify(session));
}

export function clearSession(): void {
  inMemory = undefined;
  storage()?.removeItem(KEY);
}

/** A `return` parameter that stays on this origin (a path), or the default page. */
export function safeReturn(value: string | null, fallback = '/ux/comm'): string {
  if (!value || !value.startsWith('/') || value.startsWith('//') || value.includes('\\')) {
    return fallback;
  }
  return value;
}

/** Waits for a token posted by an allowed embedding origin; undefined after `timeoutMs`. */
function tokenFromDesktop(
  origins: readonly string[],
  timeoutMs: number,
): Promise<string | undefined> {
  if (origins.length === 0 || window.parent === window) return Promise.resolve(undefined);
  return new Promise(resolve => {
    const done = (token: string | undefined) => {
      window.removeEventListener('message', listen);
      clearTimeout(timer);
      resolve(token);
    };
    const listen = (event: MessageEvent) => {
      const data = event.data as { type?: unknown; token?: unknown } | null;
      if (!origins.includes(event.origin) || data?.type !== 'nexus:agent-token') return;
      if (typeof data.token === 'string' && data.token.length > 0) done(data.token);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    window.addEventListener('message', listen);
    window.parent.postMessage({ type: 'nexus:agent-token-request' }, '*');
  });
}

/**
 * The page's session: the stored one, else one handed in by the desktop (checked by renewing
 * it, which also gives its expiry), else undefined (the page sends the agent to sign in).
 */
export async function obtainSession(): Promise<AgentSession | undefined> {
  const stored = readSession();
  if (stored) return stored;
  const config = await call<UxConfig>('/ux/config.json').catch(() => ({ allowedOrigins: [] }));
  const handed = await tokenFromDesktop(config.allowedOrigins, 3_000);
  if (!handed) return undefined;
  try {
    const renewed = await call<AgentSession>('/auth/v3/agent/renew', {
      method: 'POST',
      token: handed,
    });
    storeSession(renewed);
    return renewed;
  } catch {
    return undefined;
  }
}

/**
 * Renews the session before it expires, for as long as the page lives; `onRenewed` gets each new
 * session (the page hands it to its socket). Returns a function that stops it.
 */
export function keepRenewed(
  initial: AgentSession,
  onRenewed: (session: AgentSession) => void,
  onExpired: () => void,
): () => void {
  let current = initial;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const schedule = () => {
    const wait = Math.max(5_000, Date.parse(current.expiresAt) - Date.now() - RENEW_BEFORE_MS);
    timer = setTimeout(() => void renew(), Math.min(wait, 2 ** 31 - 1));
  };
  const renew = async () => {
    try {
      current = await call<AgentSession>('/auth/v3/agent/renew', {
        method: 'POST',
        token: current.token,
      });
      storeSession(current);
      onRenewed(current);
      schedule();
    } catch {
      if (Date.parse(current.expiresAt) <= Date.now()) {
        clearSession();
        onExpired();
      } else {
        timer = setTimeout(() => void renew(), 15_000);
      }
    }
  };
  schedule();
  return () => clearTimeout(timer);
}

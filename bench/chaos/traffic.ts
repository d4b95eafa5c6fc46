import { http } from '../http.js';
import { sleep } from '../measure.js';
import type { Tenant } from './tenant.js';

/** What the drivers were answered: ids of accepted work per channel, and every answer by kind. */
export interface TrafficLog {
  /** Chat messages answered 202: the hub's message ids. */
  readonly chat: Set<string>;
  /** Agent outbound SMS answered 201: the hub's message ids. */
  readonly sms: Set<string>;
  /**
   * Answers: `2xx`; other statuses with the channel and the error's code (`503 sms
   * NEXUS_ERR_DB_BUSY`); `network` for a failed request, `timeout` for none in 15 s.
   */
  readonly answers: Map<string, number>;
  /** Sends given up after every retry. */
  refused: number;
}

export interface TrafficOptions {
  apiUrls: () => string[];
  tenant: Tenant;
  durationMs: number;
  /** Sends per second, across both channels. */
  rate: number;
  /** Requests in flight at most. */
  concurrency: number;
  /** Share of sends that are agent outbound SMS (the rest are chat messages). */
  smsShare: number;
  /** Numbers the SMS go to (each number's open conversation takes its later messages). */
  numbers: number;
  /** A pseudo-random generator (seeded by the run). */
  random: () => number;
  /** Sends are retried with the same client message id this many times after a failure. */
  retries: number;
}

/** A small seeded generator (mulberry32), so a run's mix of sends repeats. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TEXT = 'chaos '.repeat(20);

/** A request unanswered this long counts as `timeout` and is retried (the hub must answer). */
const REQUEST_TIMEOUT_MS = 15_000;

function answerWithin<T>(answer: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'timeout'>(resolve => {
    timer = setTimeout(() => resolve('timeout'), ms);
  });
  return Promise.race([answer, late]).finally(() => clearTimeout(timer));
}

/**
 * Drives chat and SMS traffic at a paced rate with at most `concurrency` requests in flight (a
 * send waits for a slot rather than piling up), for the duration. A failed send (no answer or a
 * non-2xx one) is retried with the same client message id, as a widget or an agent desk would:
 * the hub must store it at most once.
 */
export async function driveTraffic(options: TrafficOptions, log: TrafficLog): Promise<void> {
  const { tenant } = options;
  let inflight = 0;
  const slots: (() => void)[] = [];
  const acquire = async () => {
    while (inflight >= options.concurrency) await new Promise<void>(r => slots.push(r));
    inflight++;
  };
  const release = () => {
    inflight--;
    slots.shift()?.();
  };
  const count = (kind: string) => log.answers.set(kind, (log.answers.get(kind) ?? 0) + 1);

  const attempt = async (
    channel: 'chat' | 'sms',
    send: () => Promise<{ status: number; body: string }>,
  ) => {
    for (let tries = 0; tries <= options.retries; tries++) {
      if (tries > 0) await sleep(300 * tries);
      const res = await answerWithin(send(), REQUEST_TIMEOUT_MS).catch(() => undefined);
      if (res === 'timeout') {
        count('timeout');
        continue;
      }
      if (!res) {
        count('network');
        continue;
      }
      if (res.status >= 200 && res.status < 300) {
        count('2xx');
        return res.body;
      }
      count(`${res.status} ${channel} ${errorCode(res.body)}`);
      if (res.status >= 400 && res.status < 500 && res.status !== 429 && res.status !== 408) break;
    }
    log.refused++;
    return undefined;
  };

  const chat = async (n: number) => {
    const session = tenant.sessions[n % tenant.sessions.length] as Tenant['sessions'][number];
    const body = JSON.stringify({ data: { type: 'Text', text: TEXT, clientMessageId: `c${n}` } });
    const answer = await attempt('chat', () => {
      const urls = options.apiUrls();
      return http(
        'POST',
        `${urls[n % urls.length]}/nexus/v3/chat/sessions/${session.id}/messages`,
        { 'content-type': 'application/json', 'x-nexus-client-key': session.clientToken },
        body,
      );
    });
    if (answer) log.chat.add((JSON.parse(answer) as { data: { id: string } }).data.id);
  };

  const sms = async (n: number) => {
    const agent = tenant.agents[n % tenant.agents.length] as Tenant['agents'][number];
    const to = `+1555${String(10_000_000 + 2_000_000 + (n % options.numbers)).slice(1)}`;
    const body = JSON.stringify({ to, text: `sms ${n}`, clientMessageId: `s${n}` });
    const answer = await attempt('sms', () => {
      const urls = options.apiUrls();
      return http(
        'POST',
        `${urls[n % urls.length]}/nexus/v3/agent/outbound/sms`,
        { 'content-type': 'application/json', authorization: `Bearer ${agent.token}` },
        body,
      );
    });
    if (answer) log.sms.add((JSON.parse(answer) as { data: { messageId: string } }).data.messageId);
  };

  const started = performance.now();
  const pending = new Set<Promise<void>>();
  for (let n = 0; ; n++) {
    const due = started + (n * 1000) / options.rate;
    if (due - started >= options.durationMs) break;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    await acquire();
    const send = (options.random() < options.smsShare ? sms : chat)(n).finally(() => {
      release();
      pending.delete(send);
    });
    pending.add(send);
  }
  await Promise.all(pending);
}

export function emptyLog(): TrafficLog {
  return { chat: new Set(), sms: new Set(), answers: new Map(), refused: 0 };
}

/** The `status.code` of an error answer, or `-` when the body is not the hub's error envelope. */
function errorCode(body: string): string {
  try {
    const code = (JSON.parse(body) as { status?: { code?: unknown } }).status?.code;
    return typeof code === 'string' ? code : '-';
  } catch {
    return '-';
  }
}

import { randomUUID } from 'node:crypto';
import { DelayedError } from 'bullmq';
import type { CommonQueryMethods, DatabasePool } from 'slonik';
import { findSessionByInteraction } from '../../db/queries/chat-sessions.js';
import {
  addIdentifiers,
  findContactId,
  insertContact,
  type Identifier,
} from '../../db/queries/contacts.js';
import {
  markStarted,
  setInteractionContact,
  type InteractionRow,
} from '../../db/queries/interactions.js';
import { lockInteractionsForNumbering } from '../../db/queries/interaction-state.js';
import { findCustomerAddress } from '../../db/queries/sms.js';
import {
  appendEvents,
  sequencePendingMessagesOf,
  type InteractionEvent,
} from '../../db/conversation.js';
import type { RealtimePublisher } from '../../lib/realtime-publisher.js';
import { GroupCommit } from '../../lib/group-commit.js';
import type { Logger } from '../../lib/logger.js';
import { normalisePhone } from '../../domain/phone.js';
import { requeueParked } from '../../db/routing/handover.js';
import { routeNewInteraction } from '../../db/routing/queueing.js';
import { inboundQueue, type InboundPayload, type QueueSet } from '../../queues/index.js';
import { routeQueues } from '../../queues/routing.js';
import { scheduleBotDeadline } from '../../queues/maintenance.js';
import { completeWorks } from '../../db/work.js';
import type { Config } from '../../lib/config.js';
import { deferralDelayMs } from '../../lib/infrastructure.js';
import { StaleWorkError, type JobContext, type Processor } from '../run-processor.js';
import { parkUntilBuilt } from './unbuilt.js';

/**
 * The longest a job of a busy chat (locked by someone else) waits for the lock, running alone:
 * a batch holds its locks milliseconds, so a longer wait is a stuck holder's (a frozen worker's,
 * freed by `idle_in_transaction_session_timeout`).
 */
const ALONE_LOCK_TIMEOUT_MS = 2_000;

/** A busy chat's job put back while another of its jobs waits for the lock: 0.5 s, doubling to 5 s. */
const BUSY_DEFERRAL = { baseMs: 500, maxMs: 5_000 };

/** Normalised identifiers a chat customer gave: email lower-cased, phone digits (and "+"). */
export function identifiersOf(session: {
  email: string | null;
  phone: string | null;
  user_data: Record<string, unknown>;
}): Identifier[] {
  const identifiers: Identifier[] = [];
  const email = session.email?.trim().toLowerCase();
  if (email) identifiers.push({ kind: 'email', value: email });
  // The form SMS threads store (domain/phone.ts), so a chat and a text from one phone match one
  // contact; a value that is no phone number identifies nobody.
  const phone = session.phone ? normalisePhone(session.phone) : undefined;
  if (phone) identifiers.push({ kind: 'phone', value: phone });
  const external = session.user_data.customerId;
  if (typeof external === 'string' && external.trim()) {
    identifiers.push({ kind: 'external', value: external.trim() });
  }
  return identifiers;
}

/** Who the customer of an interaction is: how to find their contact, and how they join. */
interface Customer {
  identifiers: Identifier[];
  contact: { firstName: string | null; lastName: string | null; nickname: string | null };
  participant: { id: string; nickname: string | null };
}

/**
 * The customer of a web chat (its session), or of an interaction threaded on a customer address
 * (an SMS or email conversation: the phone number or email address is the identifier and the
 * participant id).
 */
async function customerOf(
  tx: CommonQueryMethods,
  interactionId: string,
): Promise<Customer | undefined> {
  const session = await findSessionByInteraction(tx, interactionId);
  if (session) {
    return {
      identifiers: identifiersOf(session),
      contact: {
        firstName: session.first_name,
        lastName: session.last_name,
        nickname: session.nickname,
      },
      participant: { id: session.participant_id, nickname: session.nickname },
    };
  }
  const thread = await findCustomerAddress(tx, interactionId);
  if (!thread) return undefined;
  return {
    identifiers: [
      { kind: thread.address.includes('@') ? 'email' : 'phone', value: thread.address },
    ],
    contact: { firstName: null, lastName: null, nickname: thread.address },
    participant: { id: thread.address, nickname: null },
  };
}

/**
 * Once per interaction, under its lock: matches or creates the contact (by email, phone or
 * external id, per tenant) and writes the STARTED and customer-joined events. Idempotent.
 */
async function startChat(
  tx: CommonQueryMethods,
  interaction: InteractionRow,
): Promise<InteractionEvent[]> {
  if (!(await markStarted(tx, interaction.id))) return [];
  const customer = await customerOf(tx, interaction.id);
  if (!customer) return [];
  let contactId = await findContactId(tx, interaction.tenant_id, customer.identifiers);
  const returning = contactId !== undefined;
  if (!contactId) {
    contactId = randomUUID();
    await insertContact(tx, {
      id: contactId,
      tenantId: interaction.tenant_id,
      ...customer.contact,
    });
  }
  await addIdentifiers(tx, interaction.tenant_id, contactId, customer.identifiers);
  await setInteractionContact(tx, interaction.id, contactId);
  return appendEvents(tx, interaction.id, [
    {
      type: 'interaction.started',
      payload: {
        interaction: {
          id: interaction.id,
          mediaType: interaction.media,
          interactionSubtype: interaction.subtype,
          endpoint: interaction.endpoint,
          contactId,
          returningContact: returning,
        },
      },
    },
    {
      type: 'participant.joined',
      payload: { participant: { ...customer.participant, type: 'customer' } },
    },
  ]);
}

/**
 * The inbound processor. Web chat: the API stored the session or message; here the interaction
 * is started once (contact matched, STARTED event), routed, and pending messages are numbered in
 * arrival order with their events. (A message of a running chat is numbered by the API when it is
 * stored, and has no job: db/queries/intake.ts.) Concurrent jobs are handled together (group commit): one transaction
 * locks their interactions in id order, starts those not started, numbers every pending message
 * of all of them in a fixed number of statements, and marks the jobs' work rows done; the events
 * are published after the commit. A job whose row was no longer pending ends as stale. Inbound
 * SMS arrive the same way, from an aggregator or through the Third-Party Messaging API (the API
 * stored the threaded interaction and the message); the start then matches the contact by phone
 * number; inbound email the same way (api/email/inbound.ts), matched by email address. Jobs of
 * the `async` channel, which nothing enqueues, park as undelivered.
 */
export function createInboundProcessor(deps: {
  db: DatabasePool;
  publisher: RealtimePublisher;
  log?: Logger;
  /** Producers, to time routing offers out (the maintenance sweep does it otherwise). */
  queues?: QueueSet;
  /** The worker's concurrency and the sessions' lock timeout (defaults otherwise). */
  config?: {
    workers: Pick<Config['workers'], 'concurrency'>;
    db: Pick<Config['db'], 'lockTimeoutMs'>;
  };
}): Processor<typeof inboundQueue> {
  const concurrency = deps.config?.workers.concurrency ?? 10;
  /** At most this many jobs of busy chats wait for a lock at once: the other slots stay free. */
  const aloneLimit = Math.max(1, Math.floor(concurrency / 2));
  /** How long a job of a busy chat waits for its lock (never longer than the session's). */
  const aloneLockTimeoutMs = Math.min(
    ALONE_LOCK_TIMEOUT_MS,
    deps.config?.db.lockTimeoutMs ?? 5_000,
  );
  /** Interactions with a job running alone in this process. */
  const alone = new Set<string>();
  const notBuilt = parkUntilBuilt(inboundQueue, 'inbound async messages');
  /**
   * Handles jobs in one transaction. The numbering lock (NUMBERING_LOCK, `FOR NO KEY UPDATE`)
   * serialises numbering, but does not conflict with the KEY SHARE lock a customer message's
   * insert takes on its interaction (foreign key), so intake never waits on a batch, even a
   * frozen one. With `skipLocked` (the group commit's batches) an interaction locked by someone
   * else (another batch, an agent's write) is skipped instead of waited for, so one busy chat
   * holds up no other: its jobs answer `skipped` and are run again alone, waiting for the lock at
   * most `lockTimeoutMs` (then the job fails and retries).
   */
  const run = async (
    items: readonly { jobId: string; interactionId: string }[],
    skipLocked: boolean,
    lockTimeoutMs?: number,
  ): Promise<{ stale: boolean; skipped: boolean }[]> => {
    const ids = [...new Set(items.map(item => item.interactionId))].sort();
    const { events, done, queued, locked, bots } = await deps.db.transaction(async tx => {
      const interactions = await lockInteractionsForNumbering(tx, ids, {
        skipLocked,
        lockTimeoutMs,
      });
      // Skipped (or missing: the run alone completes those) interactions are not touched.
      const locked = new Set(skipLocked ? interactions.map(row => row.id) : ids);
      const lockedIds = ids.filter(id => locked.has(id));
      const written: InteractionEvent[] = [];
      const queued = new Map<string, { tenantId: string; queue: string }>();
      const bots: { interactionId: string; handoffAt: Date }[] = [];
      for (const interaction of interactions) {
        if (interaction.started) continue;
        written.push(...(await startChat(tx, interaction)));
        // To its queue, or to the bot of a botFirst queue (whose deadline is timed below).
        const routed = await routeNewInteraction(tx, interaction);
        written.push(...(routed?.events ?? []));
        if (routed?.bot) bots.push(routed.bot);
        else if (routed) {
          queued.set(`${interaction.tenant_id}/${routed.queue}`, {
            tenantId: interaction.tenant_id,
            queue: routed.queue,
          });
        }
      }
      const sequenced = await sequencePendingMessagesOf(tx, lockedIds);
      written.push(...sequenced);
      // A customer writing to a parked chat brings it back to the queue, for its agent first.
      const wrote = sequenced
        .filter(event => (event.data.from as { type?: string } | undefined)?.type === 'customer')
        .map(event => event.interactionId);
      const requeued = await requeueParked(tx, [...new Set(wrote)]);
      written.push(...requeued.events);
      for (const back of requeued.queues) queued.set(`${back.tenantId}/${back.queue}`, back);
      const completed = await completeWorks(
        tx,
        inboundQueue.name,
        items.filter(item => locked.has(item.interactionId)).map(item => item.jobId),
        { countAttempt: true },
      );
      return { events: written, done: completed, queued: [...queued.values()], locked, bots };
    });
    deps.publisher.events(events);
    for (const bot of bots) {
      if (deps.queues && deps.log) scheduleBotDeadline(deps.queues, bot, deps.log);
    }
    // New interactions wait in their queues: hand them to agents now (the maintenance sweep
    // routes anything left waiting).
    await routeQueues(deps, queued);
    return items.map(item =>
      locked.has(item.interactionId)
        ? { stale: !done.has(item.jobId), skipped: false }
        : { stale: false, skipped: true },
    );
  };
  const batch = new GroupCommit<
    { jobId: string; interactionId: string },
    { stale: boolean; skipped: boolean }
  >(items => run(items, true), 100, 1);
  const processor = async (payload: InboundPayload, ctx: JobContext) => {
    // Web chat, SMS and email arrive stored (interaction and message); `async` jobs (which
    // nothing enqueues: the Async gateway's messages arrive as `sms`) park.
    if (!payload.interactionId || payload.channel === 'async') {
      return notBuilt(payload, ctx);
    }
    ctx.completedHere();
    const item = { jobId: ctx.job.id ?? '', interactionId: payload.interactionId };
    let result = await batch.submit(item);
    if (result.skipped) {
      // Its chat was busy: run alone (outside the batch's slot), waiting for the lock. One job
      // per chat at a time, and a few at most in all: the others go back, delayed, at once
      // (without using an attempt), so busy chats cannot fill the job slots (and the pool) while
      // their lock is held.
      if ((alone.has(item.interactionId) || alone.size >= aloneLimit) && ctx.token !== undefined) {
        const job = ctx.job;
        const deferrals = Math.max(0, (job.attemptsStarted ?? 0) - job.attemptsMade - 1);
        const delayMs = deferralDelayMs(deferrals, BUSY_DEFERRAL);
        await job.moveToDelayed(Date.now() + delayMs, ctx.token);
        ctx.log.debug({ interactionId: item.interactionId, delayMs }, 'chat busy: job put back');
        throw new DelayedError();
      }
      alone.add(item.interactionId);
      try {
        result = (await run([item], false, aloneLockTimeoutMs))[0] ?? result;
      } finally {
        alone.delete(item.interactionId);
      }
    }
    if (result.stale) throw new StaleWorkError();
  };
  // The batch's completion counts the attempt: no separate claim round trip (and commit) per job.
  return Object.assign(processor, { claimsItself: true });
}

import type { DatabasePool } from 'slonik';
import { z } from 'zod';
import {
  findUndelivered,
  listUndelivered,
  lockOpenUndelivered,
  markReplayed,
  type UndeliveredRow,
} from '../../db/queries/undelivered.js';
import { reopenDeliveries } from '../../db/webhook-log.js';
import { AppError } from '../../lib/errors.js';
import { singleDelivery } from '../../queues/webhooks.js';
import { QUEUE_NAMES } from '../../queues/index.js';
import { reopenFailedWork, type WorkRow } from '../../db/work.js';
import { redispatchWork, type EnqueueContext } from '../../queues/work.js';
import { reply } from '../error-handler.js';
import { envelopeOf, type Api } from '../openapi.js';
import { rowNumber } from '../validate.js';

/**
 * Undelivered work over the operator API: the records of jobs that failed for good, and their
 * replay (one, or every open one since T).
 */

export interface UndeliveredDeps {
  db: DatabasePool;
  enqueue: EnqueueContext;
}

const queueName = z.enum(QUEUE_NAMES as [string, ...string[]], {
  errorMap: () => ({ message: `must be one of ${QUEUE_NAMES.join(', ')}` }),
});
const instant = z
  .string()
  .datetime({ offset: true, message: 'must be an ISO-8601 date-time' })
  .transform(v => new Date(v));

const listQuery = z
  .object({
    tenant: z.string().min(1).max(255).optional(),
    queue: queueName.optional(),
    since: instant.optional(),
    limit: z.coerce.number().int().min(1).max(500).default(100),
    before: rowNumber(1).optional(),
  })
  .strict();

const idParams = z.object({
  id: rowNumber(1),
});

const replayAllBody = z
  .object({
    since: instant,
    tenant: z.string().min(1).max(255).optional(),
    queue: queueName.optional(),
    limit: z.number().int().min(1).max(10_000).default(1_000),
  })
  .strict();

const undeliveredView = z
  .object({
    id: z.number(),
    queue: z.string(),
    jobId: z.string(),
    tenantId: z.string().nullable(),
    code: z
      .string()
      .describe('Why, as a code of docs/errors.md ("Failed work"); `reason` says more'),
    reason: z.string(),
    attempts: z.number(),
    failures: z.number(),
    firstAttemptAt: z.string().nullable(),
    lastAttemptAt: z.string(),
    replayedAt: z.string().nullable(),
    replays: z.number(),
  })
  .openapi('Undelivered');

const present = (row: UndeliveredRow): z.infer<typeof undeliveredView> => ({
  id: row.id,
  queue: row.queue,
  jobId: row.job_id,
  tenantId: row.tenant_id,
  code: row.code,
  reason: row.reason,
  attempts: row.attempts,
  failures: row.failures,
  firstAttemptAt: row.first_attempt_at,
  lastAttemptAt: row.last_attempt_at,
  replayedAt: row.replayed_at,
  replays: row.replays,
});

/** The webhook deliveries among replayed work (their delivery log shows them pending again). */
const webhookDeliveriesOf = (works: readonly WorkRow[]): number[] =>
  works.flatMap(work => {
    // A batch of first attempts reopens nothing: its re-run only sends what it never attempted.
    const parsed = work.queue === 'webhooks' ? singleDelivery.safeParse(work.payload) : undefined;
    return parsed?.success ? [parsed.data.deliveryId] : [];
  });

/**
 * Operator API for undelivered work (behind the admin token):
 * - `GET  /nexus/v3/undelivered?tenant&queue&since&limit&before` lists failures, newest first;
 * - `POST /nexus/v3/undelivered/:id/replay` replays one;
 * - `POST /nexus/v3/undelivered/replay {since, tenant?, queue?, limit?}` replays every open one since T.
 * A replay puts the work row back to pending and enqueues it under its original job id; if Redis
 * is down the sweeper enqueues it later.
 */
export function undeliveredRoutes(api: Api, deps: UndeliveredDeps): void {
  const redispatch = (rows: readonly WorkRow[]) => redispatchWork(deps.enqueue, rows);

  api.route({
    method: 'get',
    path: '/nexus/v3/undelivered',
    tag: 'Undelivered',
    summary: 'List undelivered work',
    description:
      'Jobs that exhausted their attempts or failed permanently, newest first. Page with `before` (the last id of the previous page).',
    auth: 'nexus:cluster:*',
    query: listQuery,
    responses: {
      200: {
        description: 'Undelivered records',
        schema: envelopeOf(
          z.object({ items: z.array(undeliveredView), next: z.number().nullable() }),
        ),
      },
    },
    async handle({ query, res }) {
      const rows = await listUndelivered(
        deps.db,
        { tenantId: query.tenant, queue: query.queue, since: query.since },
        { limit: query.limit, before: query.before },
      );
      const last = rows.at(-1);
      reply(res, 200, {
        items: rows.map(present),
        next: rows.length === query.limit && last ? last.id : null,
      });
    },
  });

  api.route({
    method: 'post',
    path: '/nexus/v3/undelivered/:id/replay',
    tag: 'Undelivered',
    summary: 'Replay one undelivered record',
    description: 'Puts the work back to pending and enqueues it under its original job id.',
    auth: 'nexus:cluster:*',
    params: idParams,
    responses: {
      202: {
        description: 'Replayed',
        schema: envelopeOf(
          z.object({
            id: z.number(),
            queue: z.string(),
            jobId: z.string(),
            state: z.literal('pending'),
          }),
        ),
      },
    },
    async handle({ params, res }) {
      const { id } = params;
      const reopened = await deps.db.transaction(async tx => {
        const row = await findUndelivered(tx, id);
        if (!row) throw new AppError('NEXUS_ERR_NOT_FOUND', `undelivered record ${id} not found`);
        const work = await reopenFailedWork(tx, row.queue, row.job_id, deps.enqueue);
        if (!work) throw new AppError('NEXUS_ERR_UNDELIVERED_NOT_REPLAYABLE');
        await markReplayed(tx, [row.id]);
        await reopenDeliveries(tx, webhookDeliveriesOf([work]));
        return work;
      });
      await redispatch([reopened]);
      reply(res, 202, { id, queue: reopened.queue, jobId: reopened.job_id, state: 'pending' });
    },
  });

  api.route({
    method: 'post',
    path: '/nexus/v3/undelivered/replay',
    tag: 'Undelivered',
    summary: 'Replay every open undelivered record since T',
    auth: 'nexus:cluster:*',
    body: replayAllBody,
    responses: {
      202: {
        description: 'Replayed',
        schema: envelopeOf(z.object({ replayed: z.number(), more: z.boolean() })),
      },
    },
    async handle({ body, res }) {
      const { reopened, more } = await deps.db.transaction(async tx => {
        const rows = await lockOpenUndelivered(
          tx,
          { tenantId: body.tenant, queue: body.queue, since: body.since },
          body.limit + 1,
        );
        const batch = rows.slice(0, body.limit);
        const works: WorkRow[] = [];
        for (const row of batch) {
          const work = await reopenFailedWork(tx, row.queue, row.job_id, deps.enqueue);
          if (work) works.push(work);
        }
        await reopenDeliveries(tx, webhookDeliveriesOf(works));
        await markReplayed(
          tx,
          batch.map(row => row.id),
        );
        return { reopened: works, more: rows.length > body.limit };
      });
      await redispatch(reopened);
      reply(res, 202, { replayed: reopened.length, more });
    },
  });
}

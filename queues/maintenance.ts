import { z } from 'zod';
import { defineQueue, jobIdFrom } from './definition.js';

/**
 * Internal housekeeping: the sweeper's repeatable job. Not durable (it is its own safety net)
 * and never recorded as undelivered: a failed sweep simply runs again on the next tick.
 */
export const maintenancePayload = z.object({ task: z.literal('sweep-pending-work') });
export type MaintenancePayload = z.infer<typeof maintenancePayload>;

export const SWEEP_SCHEDULER_ID = 'sweep-pending-work';

export const maintenanceQueue = defineQueue({
  name: 'maintenance',
  schema: maintenancePayload,
  jobOptions: { attempts: 1, removeOnComplete: { count: 100 }, removeOnFail: { count: 100 } },
  jobId: p => jobIdFrom('maintenance', p.task),
  tenantOf: () => undefined,
  durable: false,
});

import { receiptsQueue } from '../../queues/index.js';
import { parkUntilBuilt } from './unbuilt.js';

/** Processor of the `receipts` queue: delivery receipts is not built yet, see {@link parkUntilBuilt}. */
export const processReceipt = parkUntilBuilt(receiptsQueue, 'delivery receipts');

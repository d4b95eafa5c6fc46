import { webhooksQueue } from '../../queues/index.js';
import { parkUntilBuilt } from './unbuilt.js';

/** Processor of the `webhooks` queue: webhook delivery is not built yet, see {@link parkUntilBuilt}. */
export const processWebhook = parkUntilBuilt(webhooksQueue, 'webhook delivery');

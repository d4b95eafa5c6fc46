import { outboundEmailQueue } from '../../queues/index.js';
import { parkUntilBuilt } from './unbuilt.js';

/** Processor of the `outbound-email` queue: outbound email is not built yet, see {@link parkUntilBuilt}. */
export const processOutboundEmail = parkUntilBuilt(outboundEmailQueue, 'outbound email');

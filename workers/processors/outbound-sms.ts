import { outboundSmsQueue } from '../../queues/index.js';
import { parkUntilBuilt } from './unbuilt.js';

/** Processor of the `outbound-sms` queue: outbound SMS is not built yet, see {@link parkUntilBuilt}. */
export const processOutboundSms = parkUntilBuilt(outboundSmsQueue, 'outbound SMS');

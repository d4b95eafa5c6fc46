import { inboundQueue } from '../../queues/index.js';
import { parkUntilBuilt } from './unbuilt.js';

/** Processor of the `inbound` queue: the inbound pipeline is not built yet, see {@link parkUntilBuilt}. */
export const processInbound = parkUntilBuilt(inboundQueue, 'the inbound pipeline');

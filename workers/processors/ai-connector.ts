import { aiConnectorQueue } from '../../queues/index.js';
import { parkUntilBuilt } from './unbuilt.js';

/** Processor of the `ai-connector` queue: the AI connector is not built yet, see {@link parkUntilBuilt}. */
export const processAiConnector = parkUntilBuilt(aiConnectorQueue, 'the AI connector');

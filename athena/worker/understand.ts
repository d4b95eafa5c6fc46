import type { DatabasePool } from 'slonik';
import type { ProviderRow } from '../../db/queries/athena.js';
import type { EgressGuard } from '../../lib/egress.js';
import { WorkFailure } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { nluCallsTotal, nluLatencySeconds } from '../../lib/metrics.js';
import type { SecretBox } from '../../lib/secrets.js';
import { isNluProviderName, NLU_PROVIDERS } from '../nlu/index.js';
import type { NluResult } from '../nlu/provider.js';
import { providerSecretContext } from '../providers.js';

/** The provider settings a tenant's conversations use unless one serves their queue or endpoint. */
export const DEFAULT_PROVIDER = 'default';

export interface UnderstandDeps {
  db: DatabasePool;
  secrets: SecretBox;
  guard: EgressGuard;
  /** How long a provider may take to answer, unless its settings say (`data.timeoutMs`). */
  timeoutMs: number;
}

/**
 * The provider settings for a conversation: the entry whose `data.queues` names its queue, else
 * the one whose `data.endpoints` names its endpoint, else `default` (entries in name order); null
 * when none applies.
 */
export function chooseProvider(
  providers: readonly ProviderRow[],
  conversation: { queue: string | null; endpoint: string | null },
): ProviderRow | null {
  const names = (row: ProviderRow, key: 'queues' | 'endpoints'): readonly unknown[] => {
    const list: unknown = row.data[key];
    return Array.isArray(list) ? (list as unknown[]) : [];
  };
  const { queue, endpoint } = conversation;
  return (
    (queue !== null && providers.find(row => names(row, 'queues').includes(queue))) ||
    (endpoint !== null && providers.find(row => names(row, 'endpoints').includes(endpoint))) ||
    providers.find(row => row.name === DEFAULT_PROVIDER) ||
    null
  );
}

/**
 * Asks the tenant's NLU provider what one customer message means, counting the call and its
 * time by provider and outcome. The provider's errors go through as they are (retried or not,
 * by their kind: see athena/nlu/provider.ts).
 */
export async function understand(
  deps: UnderstandDeps,
  settings: ProviderRow,
  turn: { tenantId: string; interactionId: string; text: string },
  log: Logger,
): Promise<NluResult> {
  if (!isNluProviderName(settings.provider)) {
    throw new WorkFailure(
      'NEXUS_ERR_NLU_NOT_CONFIGURED',
      `unknown NLU provider ${settings.provider}`,
    );
  }
  const provider = NLU_PROVIDERS[settings.provider];
  const started = performance.now();
  try {
    const result = await provider(
      {
        tenant: turn.tenantId,
        sessionId: turn.interactionId,
        text: turn.text,
        languageCode:
          typeof settings.data.languageCode === 'string' ? settings.data.languageCode : 'en',
      },
      {
        url: settings.url ?? undefined,
        data: settings.data,
        secret: settings.secret_sealed
          ? (deps.secrets.open(
              settings.secret_sealed,
              providerSecretContext(turn.tenantId, settings.name),
            ) as Record<string, unknown>)
          : {},
      },
      {
        guard: deps.guard,
        timeoutMs:
          typeof settings.data.timeoutMs === 'number' ? settings.data.timeoutMs : deps.timeoutMs,
        log,
      },
    );
    nluCallsTotal.inc({ provider: settings.provider, outcome: 'answered' });
    return result;
  } catch (error) {
    nluCallsTotal.inc({
      provider: settings.provider,
      outcome: retryable(error) ? 'unavailable' : 'failed',
    });
    throw error;
  } finally {
    nluLatencySeconds.observe(
      { provider: settings.provider },
      (performance.now() - started) / 1000,
    );
  }
}

/** A failure the queue retries (not BullMQ's `UnrecoverableError`). */
export const retryable = (error: unknown) =>
  error instanceof Error && error.name !== 'UnrecoverableError';

import { describe, expect, it } from 'vitest';
import type { ProviderRow } from '../../db/queries/athena.js';
import { chooseProvider } from './understand.js';

const row = (name: string, data: Record<string, unknown> = {}): ProviderRow => ({
  name,
  provider: 'builtin',
  url: null,
  data,
  secret_sealed: null,
});

describe('chooseProvider', () => {
  const providers = [
    row('billing', { queues: ['Billing'] }),
    row('default'),
    row('web', { endpoints: ['WebChat'] }),
  ];

  it('takes the entry of the queue, else of the endpoint, else default', () => {
    expect(chooseProvider(providers, { queue: 'Billing', endpoint: 'WebChat' })?.name).toBe(
      'billing',
    );
    expect(chooseProvider(providers, { queue: 'Sales', endpoint: 'WebChat' })?.name).toBe('web');
    expect(chooseProvider(providers, { queue: 'Sales', endpoint: 'Sms' })?.name).toBe('default');
    expect(chooseProvider(providers, { queue: null, endpoint: null })?.name).toBe('default');
  });

  it('answers null when no entry applies, and ignores malformed lists', () => {
    expect(
      chooseProvider([row('billing', { queues: 'Billing' })], { queue: 'Billing', endpoint: null }),
    ).toBeNull();
    expect(chooseProvider([], { queue: 'Billing', endpoint: null })).toBeNull();
  });
});

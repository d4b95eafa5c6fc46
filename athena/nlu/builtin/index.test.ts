import { describe, expect, it } from 'vitest';
import { EgressGuard } from '../../../lib/egress.js';
import { WorkFailure } from '../../../lib/errors.js';
import { createLogger } from '../../../lib/logger.js';
import type { NluContext, NluRequest, NluSettings } from '../provider.js';
import { builtinNlu, MAX_ANALYSED_CHARS } from './index.js';
import { trainModel } from './model.js';

const model = trainModel({
  language: 'en',
  intents: [
    { name: 'greeting', examples: ['hi', 'hello', 'good morning'] },
    {
      name: 'refund',
      examples: ['I want a refund', 'give me my money back', 'refund for my order please'],
    },
    {
      name: 'human',
      examples: ['I want to talk to a person', 'agent please', 'let me speak to a human'],
    },
  ],
  entities: {
    lists: [{ name: 'product', entries: [{ value: 'Wi-Fi router', synonyms: ['router'] }] }],
    patterns: [{ name: 'order_id', pattern: 'ORD-(?<value>\\d{6})', ignoreCase: true }],
  },
  handoffIntents: ['human'],
});

const replies = {
  refund: ['Sorry to hear that.', 'I can start a refund: what is your order number?'],
  greeting: ['Hello! How can I help?'],
};

// The built-in provider never uses the network; the context is the one every provider gets.
const ctx: NluContext = { guard: new EgressGuard(), timeoutMs: 1_000, log: createLogger('silent') };

const request = (text: string, languageCode = 'en-US'): NluRequest => ({
  tenant: 'acme',
  sessionId: 'interaction-1',
  text,
  languageCode,
});

const settings = (data: Record<string, unknown>): NluSettings => ({ data, secret: {} });

async function refusal(promise: Promise<unknown>): Promise<WorkFailure> {
  const error = await promise.then(
    () => {
      throw new Error('the provider answered');
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(WorkFailure);
  return error as WorkFailure;
}

describe('the built-in NLU provider', () => {
  it('answers the intent, all its replies, the entities and the sentiment', async () => {
    const text =
      'Hi, I want a refund for my order ORD-123456, the router broke. Call +1 555 123 4567';
    const result = await builtinNlu(request(text), settings({ model, replies }), ctx);
    expect(result).toEqual({
      intent: { name: 'refund', confidence: 0.686 },
      entities: [
        { kind: 'order_id', value: '123456', text: 'ORD-123456', start: 33, end: 43 },
        { kind: 'number', value: '123456', text: '123456', start: 37, end: 43 },
        { kind: 'product', value: 'Wi-Fi router', text: 'router', start: 49, end: 55 },
        { kind: 'phone', value: '+15551234567', text: '+1 555 123 4567', start: 68, end: 83 },
      ],
      sentiment: { score: -0.106, label: 'neutral' },
      replies: replies.refund,
      handoff: undefined,
      provider: 'builtin',
    });
  });

  it('hands off when the intent is one of the model handoff intents', async () => {
    const result = await builtinNlu(
      request('Can I talk to a real person?'),
      settings({ model, replies }),
      ctx,
    );
    expect(result.intent?.name).toBe('human');
    expect(result.handoff).toEqual({
      detail: 'intent "human" hands the conversation to a person',
    });
    expect(result.replies).toEqual([]);
  });

  it('falls back (no intent, no replies) for an unrelated message or below minConfidence', async () => {
    const unrelated = await builtinNlu(request('the weather on Mars'), settings({ model }), ctx);
    expect(unrelated).toEqual({
      intent: undefined,
      entities: [],
      sentiment: { score: 0, label: 'neutral' },
      replies: [],
      handoff: undefined,
      provider: 'builtin',
    });
    const text = 'hello, I would like my money back';
    const strict = settings({ model, replies, minConfidence: 0.95 });
    expect((await builtinNlu(request(text), settings({ model, replies }), ctx)).intent).toEqual({
      name: 'refund',
      confidence: 0.894,
    });
    const fallback = await builtinNlu(request(text), strict, ctx);
    expect(fallback.intent).toBeUndefined();
    expect(fallback.replies).toEqual([]);
  });

  it('reads only the entities of a message in another language', async () => {
    const result = await builtinNlu(
      request('Je veux un remboursement, appelez le +33 1 23 45 67 89', 'fr-FR'),
      settings({ model, replies }),
      ctx,
    );
    expect(result).toEqual({
      entities: [
        { kind: 'phone', value: '+33123456789', text: '+33 1 23 45 67 89', start: 37, end: 54 },
      ],
      replies: [],
      provider: 'builtin',
    });
  });

  it('reads "tomorrow" in the configured time zone', async () => {
    const paris = new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Paris' });
    const tomorrowInParis = () => {
      const day = new Date(`${paris.format(new Date())}T12:00:00Z`);
      day.setUTCDate(day.getUTCDate() + 1);
      return day.toISOString().slice(0, 10);
    };
    const before = tomorrowInParis();
    const result = await builtinNlu(
      request('deliver it tomorrow'),
      settings({ model, timeZone: 'Europe/Paris' }),
      ctx,
    );
    // Read before and after the call: Paris's midnight may pass in between.
    expect([before, tomorrowInParis()]).toContain(result.entities[0]?.value);
    expect(result.entities).toEqual([
      { kind: 'date', value: result.entities[0]?.value, text: 'tomorrow', start: 11, end: 19 },
    ]);
  });

  it('reads at most MAX_ANALYSED_CHARS of a message', async () => {
    const long = `${'x'.repeat(MAX_ANALYSED_CHARS - 10)} bob@example.com and carol@example.com`;
    const result = await builtinNlu(request(long), settings({ model }), ctx);
    expect(result.entities).toEqual([]);
    const edge = `${'x'.repeat(MAX_ANALYSED_CHARS - 14)} a@example.com`;
    expect((await builtinNlu(request(edge), settings({ model }), ctx)).entities).toEqual([
      {
        kind: 'email',
        value: 'a@example.com',
        text: 'a@example.com',
        start: MAX_ANALYSED_CHARS - 13,
        end: MAX_ANALYSED_CHARS,
      },
    ]);
  });

  it('uses a model read again from storage (a JSON copy), cached by its id', async () => {
    const copy = JSON.parse(JSON.stringify(model)) as unknown;
    const result = await builtinNlu(request('agent please'), settings({ model: copy }), ctx);
    expect(result.intent).toEqual({ name: 'human', confidence: 1 });
    // The id is a hash of the content trainModel wrote: a copy with that id is not read again.
    const sameId = { ...(copy as object), intents: 'not read' };
    const cached = await builtinNlu(request('agent please'), settings({ model: sameId }), ctx);
    expect(cached.intent).toEqual({ name: 'human', confidence: 1 });
  });

  it('refuses for good (not configured) without a usable model', async () => {
    const missing = await refusal(builtinNlu(request('hi'), settings({}), ctx));
    expect(missing.code).toBe('NEXUS_ERR_NLU_NOT_CONFIGURED');
    expect(missing.name).toBe('UnrecoverableError');
    expect(missing.message).toBe('builtin: settings.data.model is missing: train a model first');

    const notAModel = await refusal(builtinNlu(request('hi'), settings({ model: 'x' }), ctx));
    expect(notAModel.message).toBe('builtin: settings.data.model is not a built-in NLU model');

    const old = await refusal(
      builtinNlu(request('hi'), settings({ model: { ...model, id: 'other', version: 0 } }), ctx),
    );
    expect(old.code).toBe('NEXUS_ERR_NLU_NOT_CONFIGURED');
    expect(old.message).toBe(
      'builtin: settings.data.model: the model is of format version 0, this hub reads version 1: train it again',
    );
  });

  it('refuses invalid settings, naming the setting', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ minConfidence: 2 }, 'minConfidence: Number must be less than or equal to 1'],
      [{ replies: { refund: 'text' } }, 'replies.refund: Expected array, received string'],
      [{ timeZone: 'Mars/Olympus' }, 'timeZone: must be an IANA time zone, e.g. "Europe/Paris"'],
    ];
    for (const [data, message] of cases) {
      const error = await refusal(builtinNlu(request('hi'), settings({ model, ...data }), ctx));
      expect(error.code).toBe('NEXUS_ERR_NLU_NOT_CONFIGURED');
      expect(error.message).toBe(`builtin: settings.data.${message}`);
    }
  });
});

import { LRUCache } from 'lru-cache';
import { z } from 'zod';
import { coerceError } from '../../../lib/errors.js';
import {
  nluNotConfigured,
  type NluContext,
  type NluProvider,
  type NluRequest,
  type NluResult,
  type NluSettings,
} from '../provider.js';
import {
  classifyIntent,
  compileClassifier,
  DEFAULT_MIN_CONFIDENCE,
  featureTerms,
  winkNlp,
  type IntentClassifier,
} from './classifier.js';
import { compileEntities, extractEntities, isTimeZone, type CompiledEntities } from './entities.js';
import { fieldPath, readModel, type BuiltinModel } from './model.js';
import { sentimentOf } from './sentiment.js';

/**
 * The built-in NLU provider: on-prem, no network. The tenant's settings carry everything:
 *
 * - `data.model` (required): the model `trainModel` (model.ts) trained from the tenant's intents,
 *   entity lists and patterns, as the caller stored it;
 * - `data.replies` (optional): canned bot answers per intent name. The result's `replies` are
 *   ALL of the matched intent's replies, in order (a bot sends them as consecutive messages, as
 *   Dialogflow sends an intent's several text responses); none without an intent;
 * - `data.minConfidence` (optional, 0..1, default {@link DEFAULT_MIN_CONFIDENCE}): below it, no
 *   intent is answered (a fallback);
 * - `data.timeZone` (optional IANA zone, default UTC): the calendar "today", "tomorrow" and
 *   "yesterday" are read in.
 *
 * `handoff` is set when the matched intent is one of the model's `handoffIntents`. A message
 * whose language is not the model's (`en`) gets no intent and no sentiment (the model's words
 * and lexicon are English), but its entities still: emails, numbers and the tenant's lists read
 * the same in any language. Only the first {@link MAX_ANALYSED_CHARS} of a message are read.
 *
 * A missing or invalid model or setting fails with `nluNotConfigured` (permanent).
 */

/** The part of a message that is read: a chat or SMS is far shorter; an email's new text comes first. */
export const MAX_ANALYSED_CHARS = 5_000;

const PROVIDER = 'builtin';

/** A model made ready: parsed once, then reused for every message of every conversation. */
interface LoadedModel {
  readonly model: BuiltinModel;
  readonly classifier: IntentClassifier;
  readonly entities: CompiledEntities;
  readonly handoff: ReadonlySet<string>;
}

/**
 * Loaded models, by the settings' model object (the same object passed again costs nothing) and
 * by the model's `id` (a hash of its content, set at training: a model read again from the
 * database is a new object with the same id). Sized by the model's vector entries, so a few
 * large models cannot hold the memory of many small ones.
 */
const byObject = new WeakMap<object, LoadedModel>();
const byId = new LRUCache<string, LoadedModel>({
  maxSize: 5_000_000,
  sizeCalculation: loaded =>
    Math.max(
      1,
      loaded.model.terms.length +
        loaded.model.intents.reduce((n, i) => n + i.examples.reduce((m, e) => m + e.length, 0), 0),
    ),
});

function loadModel(raw: unknown): LoadedModel {
  if (raw === undefined || raw === null) {
    throw nluNotConfigured(`${PROVIDER}: settings.data.model is missing: train a model first`);
  }
  if (typeof raw !== 'object') {
    throw nluNotConfigured(`${PROVIDER}: settings.data.model is not a built-in NLU model`);
  }
  const known = byObject.get(raw);
  if (known) return known;
  const id = (raw as { id?: unknown }).id;
  const cached = typeof id === 'string' ? byId.get(id) : undefined;
  if (cached) {
    byObject.set(raw, cached);
    return cached;
  }
  const read = readModel(raw);
  if (!read.ok) throw nluNotConfigured(`${PROVIDER}: settings.data.model: ${read.reason}`);
  let entities: CompiledEntities;
  try {
    entities = compileEntities(read.model.entities);
  } catch (error) {
    // A stored pattern whose flags do not fit its source (trainModel never writes one).
    throw nluNotConfigured(
      `${PROVIDER}: settings.data.model: a pattern does not compile (${coerceError(error).message})`,
    );
  }
  const loaded: LoadedModel = {
    model: read.model,
    classifier: compileClassifier(read.model),
    entities,
    handoff: new Set(read.model.handoffIntents),
  };
  byObject.set(raw, loaded);
  byId.set(read.model.id, loaded);
  return loaded;
}

const optionsSchema = z.object({
  replies: z.record(z.string(), z.array(z.string().min(1))).optional(),
  minConfidence: z.number().min(0).max(1).default(DEFAULT_MIN_CONFIDENCE),
  timeZone: z
    .string()
    .refine(isTimeZone, 'must be an IANA time zone, e.g. "Europe/Paris"')
    .optional(),
});

function readOptions(data: NluSettings['data']) {
  const parsed = optionsSchema.safeParse(data);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  throw nluNotConfigured(`${PROVIDER}: settings.data.${fieldPath(issue.path)}: ${issue.message}`);
}

/** The language's primary subtag: `en-US` → `en`. */
const primaryLanguage = (code: string) => code.split(/[-_]/)[0]!.toLowerCase();

function understand(request: NluRequest, settings: NluSettings, ctx: NluContext): NluResult {
  const loaded = loadModel(settings.data.model);
  const options = readOptions(settings.data);
  const text = request.text.slice(0, MAX_ANALYSED_CHARS);
  const doc = winkNlp().readDoc(text);
  const entities = extractEntities(text, doc, loaded.entities, {
    now: new Date(),
    timeZone: options.timeZone,
  });
  if (primaryLanguage(request.languageCode) !== loaded.model.language) {
    ctx.log.debug(
      { provider: PROVIDER, languageCode: request.languageCode },
      'built-in NLU: the message is not in the model language; entities only',
    );
    return { entities, replies: [], provider: PROVIDER };
  }
  const { intent } = classifyIntent(loaded.classifier, featureTerms(doc), options.minConfidence);
  return {
    intent,
    entities,
    sentiment: sentimentOf(doc),
    replies: intent ? (options.replies?.[intent.name] ?? []) : [],
    handoff:
      intent && loaded.handoff.has(intent.name)
        ? { detail: `intent "${intent.name}" hands the conversation to a person` }
        : undefined,
    provider: PROVIDER,
  };
}

/** See the module's comment. Synchronous work (well under a millisecond per message), answered as a promise. */
export const builtinNlu: NluProvider = (request, settings, ctx) => {
  try {
    return Promise.resolve(understand(request, settings, ctx));
  } catch (error) {
    return Promise.reject(coerceError(error));
  }
};

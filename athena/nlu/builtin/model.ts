import { createHash } from 'node:crypto';
import { z } from 'zod';
import { featureTermsOf, inverseDocumentFrequency, termWeights } from './classifier.js';
import {
  BUILTIN_ENTITY_KINDS,
  LIST_PHRASE_MAX_WORDS,
  patternFlags,
  patternProblem,
  phraseWords,
  PATTERN_SOURCE_MAX_CHARS,
} from './entities.js';

/**
 * The built-in NLU's trained model: plain JSON the caller stores (per tenant) and hands back in
 * the provider settings (`settings.data.model`). {@link trainModel} builds it from what a tenant
 * uploads: intents with example phrases, entity lists and patterns, and the intents that hand the
 * conversation to a person. Training is deterministic: the same input gives the same JSON, byte
 * for byte (intents keep their order, the vocabulary is sorted, weights are rounded), so a model
 * can be compared, cached by its `id` and diffed.
 *
 * What the classifier needs is stored precomputed (see classifier.ts for the method): the
 * vocabulary, each term's inverse document frequency, and for every intent the TF-IDF vector of
 * each example, as sparse `[termIndex, weight]` pairs.
 */

/** Bumped whenever the stored shape or the features change: a model of another version is refused (retrain it). */
export const MODEL_FORMAT_VERSION = 1;

/**
 * Caps of the training input: they bound the model's size and the training time. Measured: 10,000
 * examples of about 12 words train in about 1 s into 1.4 MB of JSON; the caps allow 100,000.
 */
export const TRAINING_LIMITS = {
  intents: 200,
  examplesPerIntent: 500,
  exampleChars: 500,
  nameChars: 100,
  lists: 50,
  entriesPerList: 5_000,
  synonymsPerEntry: 20,
  /** Entries and synonyms of all lists together. */
  listPhrases: 50_000,
  entryChars: 100,
  entryWords: LIST_PHRASE_MAX_WORDS,
  patterns: 50,
} as const;

/** A sparse vector: `[termIndex, weight]` pairs, by increasing term index. */
export type SparseVector = [number, number][];

export interface TrainedIntent {
  readonly name: string;
  /** One L2-normalised TF-IDF vector per example (examples without features are refused at training). */
  readonly examples: SparseVector[];
}

export interface TrainedList {
  readonly name: string;
  readonly entries: { readonly value: string; readonly synonyms: readonly string[] }[];
}

export interface TrainedPattern {
  readonly name: string;
  readonly pattern: string;
  /** The RegExp flags it is run with (`g`, then `i` when asked, `u` when the source compiles with it). */
  readonly flags: string;
}

/** The model as stored: JSON-serialisable, nothing but plain data. */
export interface BuiltinModel {
  readonly format: 'nexus-builtin-nlu';
  readonly version: number;
  /** A hash of the rest of the model: what the provider caches a loaded model by. */
  readonly id: string;
  readonly language: 'en';
  /** The vocabulary: feature terms (stems and placeholders, see classifier.ts), sorted. */
  readonly terms: string[];
  /** Inverse document frequency of each term, over intents (one document per intent). */
  readonly idf: number[];
  readonly intents: TrainedIntent[];
  readonly handoffIntents: string[];
  readonly entities: { readonly lists: TrainedList[]; readonly patterns: TrainedPattern[] };
}

/** A training input that cannot be used; `issues` lists every problem, each naming its field. */
export class ModelInputError extends Error {
  override readonly name = 'ModelInputError';
  constructor(readonly issues: readonly string[]) {
    super(`The NLU training data is invalid: ${issues.join('; ')}`);
  }
}

const { intents: maxIntents, examplesPerIntent, exampleChars, nameChars } = TRAINING_LIMITS;

// No control characters in names: they end up in logs, metrics and the agent's screen.
const name = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .max(nameChars, `must be at most ${nameChars} characters`)
  .regex(/^[^\p{Cc}]*$/u, 'must not contain control characters');

const entryText = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .max(TRAINING_LIMITS.entryChars, `must be at most ${TRAINING_LIMITS.entryChars} characters`);

/** The training input, as a tenant uploads it. */
export const trainingInputSchema = z
  .object({
    language: z.literal('en'),
    intents: z
      .array(
        z
          .object({
            name,
            examples: z
              .array(
                z
                  .string()
                  .trim()
                  .min(1, 'must not be empty')
                  .max(exampleChars, `must be at most ${exampleChars} characters`),
              )
              .min(1, 'an intent needs at least one example')
              .max(examplesPerIntent, `must have at most ${examplesPerIntent} examples`),
          })
          .strict(),
      )
      .min(1, 'the model needs at least one intent')
      .max(maxIntents, `must have at most ${maxIntents} intents`),
    entities: z
      .object({
        lists: z
          .array(
            z
              .object({
                name,
                entries: z
                  .array(
                    z
                      .object({
                        value: entryText,
                        synonyms: z
                          .array(entryText)
                          .max(
                            TRAINING_LIMITS.synonymsPerEntry,
                            `must have at most ${TRAINING_LIMITS.synonymsPerEntry} synonyms`,
                          )
                          .default([]),
                      })
                      .strict(),
                  )
                  .min(1, 'a list needs at least one entry')
                  .max(
                    TRAINING_LIMITS.entriesPerList,
                    `must have at most ${TRAINING_LIMITS.entriesPerList} entries`,
                  ),
              })
              .strict(),
          )
          .max(TRAINING_LIMITS.lists, `must have at most ${TRAINING_LIMITS.lists} lists`)
          .default([]),
        patterns: z
          .array(
            z
              .object({
                name,
                pattern: z
                  .string()
                  .min(1, 'must not be empty')
                  .max(
                    PATTERN_SOURCE_MAX_CHARS,
                    `must be at most ${PATTERN_SOURCE_MAX_CHARS} characters`,
                  ),
                /** Match letters whatever their case. @defaultValue false */
                ignoreCase: z.boolean().default(false),
              })
              .strict(),
          )
          .max(TRAINING_LIMITS.patterns, `must have at most ${TRAINING_LIMITS.patterns} patterns`)
          .default([]),
      })
      .strict()
      .default({}),
    handoffIntents: z.array(name).max(maxIntents).default([]),
  })
  .strict();

export type TrainingInput = z.input<typeof trainingInputSchema>;
type ParsedInput = z.output<typeof trainingInputSchema>;

/** `intents[2].examples[0]`: the field a zod issue (or our own check) is about. */
export function fieldPath(path: readonly (string | number)[]): string {
  return path.reduce<string>(
    (out, key) => (typeof key === 'number' ? `${out}[${key}]` : out ? `${out}.${key}` : key),
    '',
  );
}

const quote = (text: string) => JSON.stringify(text.length > 60 ? `${text.slice(0, 57)}...` : text);

/** How two examples compare for duplicates: case, spacing and punctuation do not count. */
const exampleKey = (text: string) =>
  text
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, ' ')
    .trim();

/** The checks zod cannot express: unique names, known handoff intents, usable patterns. */
function crossFieldIssues(input: ParsedInput): string[] {
  const issues: string[] = [];
  const intentOf = new Map<string, string>();
  const seenIntents = new Set<string>();
  input.intents.forEach((intent, i) => {
    if (seenIntents.has(intent.name)) {
      issues.push(`intents[${i}].name: ${quote(intent.name)} is the name of an earlier intent`);
    }
    seenIntents.add(intent.name);
    intent.examples.forEach((example, j) => {
      const key = exampleKey(example);
      const other = intentOf.get(key);
      if (other !== undefined && other !== intent.name) {
        issues.push(
          `intents[${i}].examples[${j}]: ${quote(example)} is also an example of intent ${quote(other)}`,
        );
      }
      intentOf.set(key, intent.name);
    });
  });
  input.handoffIntents.forEach((handoff, i) => {
    if (!seenIntents.has(handoff)) {
      issues.push(`handoffIntents[${i}]: ${quote(handoff)} is not the name of an intent`);
    }
  });
  const kinds = new Set<string>(BUILTIN_ENTITY_KINDS);
  const claim = (field: string, kind: string) => {
    if (kinds.has(kind.toLowerCase())) {
      issues.push(
        `${field}: ${quote(kind)} is already the name of a built-in entity or another list or pattern`,
      );
    }
    kinds.add(kind.toLowerCase());
  };
  input.entities.lists.forEach((list, i) => {
    claim(`entities.lists[${i}].name`, list.name);
    list.entries.forEach((entry, j) => {
      for (const [k, text] of [entry.value, ...entry.synonyms].entries()) {
        const words = phraseWords(text).length;
        if (words > TRAINING_LIMITS.entryWords) {
          const field = k === 0 ? 'value' : `synonyms[${k - 1}]`;
          issues.push(
            `entities.lists[${i}].entries[${j}].${field}: must be at most ${TRAINING_LIMITS.entryWords} words (a symbol counts as one)`,
          );
        }
      }
    });
  });
  const phrases = input.entities.lists.reduce(
    (n, list) => n + list.entries.reduce((m, entry) => m + 1 + entry.synonyms.length, 0),
    0,
  );
  if (phrases > TRAINING_LIMITS.listPhrases) {
    issues.push(
      `entities.lists: must have at most ${TRAINING_LIMITS.listPhrases} entries and synonyms in all (has ${phrases})`,
    );
  }
  input.entities.patterns.forEach((pattern, i) => {
    claim(`entities.patterns[${i}].name`, pattern.name);
    const problem = patternProblem(pattern.pattern, pattern.ignoreCase);
    if (problem) issues.push(`entities.patterns[${i}].pattern: ${problem}`);
  });
  return issues;
}

/** L2 norm to 1, rounded: the stored vectors are short and reproducible. */
function normalised(weights: Map<number, number>): SparseVector {
  let sum = 0;
  for (const weight of weights.values()) sum += weight * weight;
  const norm = Math.sqrt(sum);
  return [...weights.entries()]
    .sort(([a], [b]) => a - b)
    .map(([term, weight]): [number, number] => [term, round(weight / norm)]);
}

const round = (value: number) => Math.round(value * 1e6) / 1e6;

/**
 * Validates a tenant's training data and trains the model. Throws {@link ModelInputError}
 * listing every problem (each naming its field, e.g. `intents[1].examples: an intent needs at
 * least one example`) when the data cannot be used.
 */
export function trainModel(input: unknown): BuiltinModel {
  const parsed = trainingInputSchema.safeParse(input);
  if (!parsed.success) {
    throw new ModelInputError(
      parsed.error.issues.map(issue => `${fieldPath(issue.path) || '(input)'}: ${issue.message}`),
    );
  }
  const data = parsed.data;
  const issues = crossFieldIssues(data);

  // Term weights of every example; an example without a term would be a vector of nothing.
  const exampleTerms = data.intents.map((intent, i) =>
    intent.examples.map((example, j) => {
      const terms = termWeights(featureTermsOf(example));
      if (terms.size === 0) {
        issues.push(
          `intents[${i}].examples[${j}]: ${quote(example)} has no word the classifier can use (only stop words, punctuation or spaces)`,
        );
      }
      return terms;
    }),
  );
  if (issues.length > 0) throw new ModelInputError(issues);

  const vocabulary = [...new Set(exampleTerms.flat().flatMap(terms => [...terms.keys()]))].sort();
  const indexOf = new Map(vocabulary.map((term, i) => [term, i]));
  // Document frequency over intents: a term said in every intent tells them apart the least.
  const intentFrequency = new Array<number>(vocabulary.length).fill(0);
  for (const examples of exampleTerms) {
    const terms = new Set(examples.flatMap(weights => [...weights.keys()]));
    for (const term of terms) intentFrequency[indexOf.get(term)!]! += 1;
  }
  const intentCount = data.intents.length;
  const idf = intentFrequency.map(df => round(inverseDocumentFrequency(intentCount, df)));

  const intents = data.intents.map((intent, i): TrainedIntent => {
    const examples = exampleTerms[i]!.map(terms => {
      const weights = new Map<number, number>();
      for (const [term, weight] of terms) {
        const index = indexOf.get(term)!;
        weights.set(index, weight * idf[index]!);
      }
      return normalised(weights);
    });
    return { name: intent.name, examples };
  });

  const body = {
    format: 'nexus-builtin-nlu' as const,
    version: MODEL_FORMAT_VERSION,
    language: data.language,
    terms: vocabulary,
    idf,
    intents,
    handoffIntents: [...new Set(data.handoffIntents)],
    entities: {
      lists: data.entities.lists.map(list => ({
        name: list.name,
        entries: list.entries.map(entry => ({
          value: entry.value,
          synonyms: [...new Set(entry.synonyms)],
        })),
      })),
      patterns: data.entities.patterns.map(pattern => ({
        name: pattern.name,
        pattern: pattern.pattern,
        flags: patternFlags(pattern.pattern, pattern.ignoreCase),
      })),
    },
  };
  const id = createHash('sha256').update(JSON.stringify(body)).digest('hex').slice(0, 32);
  const { format, version, ...rest } = body;
  return { format, version, id, ...rest };
}

const sparseVector = z.array(z.tuple([z.number().int().nonnegative(), z.number()]));

/** The stored model's shape, checked when the provider loads it (settings are data from the database). */
const modelSchema = z.object({
  format: z.literal('nexus-builtin-nlu'),
  version: z.number().int(),
  id: z.string().min(1),
  language: z.literal('en'),
  terms: z.array(z.string()),
  idf: z.array(z.number().positive()),
  intents: z
    .array(
      z.object({
        name: z.string().min(1),
        examples: z.array(sparseVector),
      }),
    )
    .min(1),
  handoffIntents: z.array(z.string()),
  entities: z.object({
    lists: z.array(
      z.object({
        name: z.string().min(1),
        entries: z.array(z.object({ value: z.string().min(1), synonyms: z.array(z.string()) })),
      }),
    ),
    patterns: z.array(
      z.object({
        name: z.string().min(1),
        pattern: z.string().min(1),
        flags: z.string().regex(/^gi?u?$/),
      }),
    ),
  }),
});

/**
 * Reads a stored model; answers why it cannot be used (not a model, another format version,
 * indexes out of range) rather than throwing, so the provider can say "not configured".
 */
export function readModel(
  raw: unknown,
): { ok: true; model: BuiltinModel } | { ok: false; reason: string } {
  const parsed = modelSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return {
      ok: false,
      reason: `not a built-in NLU model (${fieldPath(issue.path) || 'model'}: ${issue.message})`,
    };
  }
  const model = parsed.data;
  if (model.version !== MODEL_FORMAT_VERSION) {
    return {
      ok: false,
      reason: `the model is of format version ${model.version}, this hub reads version ${MODEL_FORMAT_VERSION}: train it again`,
    };
  }
  if (model.idf.length !== model.terms.length) {
    return { ok: false, reason: 'the model has not one idf per term' };
  }
  const size = model.terms.length;
  const inRange = (vector: SparseVector) => vector.every(([index]) => index < size);
  if (!model.intents.every(intent => intent.examples.every(inRange))) {
    return { ok: false, reason: 'the model has a vector with a term index out of range' };
  }
  // Patterns run on every message: a stored one is checked as an uploaded one is.
  for (const [i, { pattern, flags }] of model.entities.patterns.entries()) {
    const problem = patternProblem(pattern, flags.includes('i'));
    if (problem) return { ok: false, reason: `entities.patterns[${i}].pattern: ${problem}` };
  }
  return { ok: true, model };
}

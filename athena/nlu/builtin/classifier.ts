import winkNLP, {
  type Document,
  type ItsFunction,
  type ItsHelpers,
  type WinkMethods,
} from 'wink-nlp';
import winkEnglish from 'wink-eng-lite-web-model';
import type { BuiltinModel, SparseVector } from './model.js';

/**
 * The built-in NLU's intent classifier: TF-IDF vectors, each intent scored by how closely its
 * nearest examples match the message and by how much of the message's weight its words cover.
 *
 * Why this and not naive Bayes: a posterior is shared out among the intents (it sums to 1), so a
 * message about something else entirely still lands on some intent with a high probability. A
 * similarity is absolute: a message that shares no word with any example scores 0, which is
 * what a fallback needs, and adding intents does not change another intent's score.
 *
 * Features (the same at training and at classification, {@link featureTerms}): wink-nlp's
 * tokens, stop words out (wink-nlp's list, less its question words {@link QUESTION_WORDS}, plus
 * a few words of asking {@link REQUEST_WORDS}), words reduced to their stem (`refunded`,
 * `refunds` → `refund`); numbers (and words with a digit, "ORD-123456"), emails, URLs, times
 * and currency signs become one placeholder each (`<number>`…: counted once, weighed as framing
 * words, ignored when no example has one), so "order 1234" and "order 98" read alike; emoji and
 * emoticons are kept.
 *
 * Weights: sublinear term frequency × smoothed IDF over intents (one document per intent: a
 * word every intent uses tells them apart the least), halved for words that only frame the
 * message (greetings, thanks: {@link FRAMING_STEMS}). A word no example has weighs as much as a
 * word only one intent has: the message says something the examples do not, and that must
 * lower every score ("Can you recommend a good book about history?" is not a greeting because
 * "good morning" is one), as much as one telling word would raise it.
 *
 * An intent's score (0..1) is the mean of two measures:
 * - nearest: the best cosine between the message and its nearest example, the sum of its two
 *   nearest, or of its three nearest; a message that mixes two phrasings ("track my parcel",
 *   from "track my package" and "my parcel has not arrived") matches nearly as well as one that
 *   repeats an example, and an intent's varied phrasings are never averaged away (a centroid
 *   would);
 * - coverage: the share of the message's weight (L2) on terms the intent owns, each term
 *   counted by its ownership ({@link compileClassifier}): a word one stray example brings into
 *   an intent counts little there.
 *
 * Confidence: the best score `s1`, lowered when the runner-up `s2` comes close:
 * `s1 × min(1, 3 × (1 − s2 / s1))`. A runner-up at two thirds of the best or less costs
 * nothing; a tie gives 0 (the message is as much one intent as the other).
 *
 * Measured on classifier.test.ts's sets: trained on 5 to 8 examples per intent, paraphrases
 * score 0.55 to 1, unrelated messages 0 to 0.47; hence the default minimum of 0.5.
 */

/** Below this confidence the classifier answers no intent (a fallback). @defaultValue 0.5 */
export const DEFAULT_MIN_CONFIDENCE = 0.5;

/** How many of an intent's nearest examples a message is compared to, summed (see {@link intentSimilarity}). */
const MERGED = 3;

/** How many intents the ranking lists at most. */
export const RANKING_SIZE = 5;

/**
 * Smoothed IDF (`ln((1 + N) / (1 + df)) + 1`, scikit-learn's default) over `documents` intents:
 * never 0, so a term shared by every intent still counts a little.
 */
export function inverseDocumentFrequency(documents: number, frequency: number): number {
  return Math.log((1 + documents) / (1 + frequency)) + 1;
}

let wink: WinkMethods | undefined;

/**
 * wink-nlp with its English model, loaded on first use and kept for the life of the process
 * (loading takes about 150 ms; a document is then read in a fraction of a millisecond).
 */
export function winkNlp(): WinkMethods {
  wink ??= winkNLP(winkEnglish);
  return wink;
}

/**
 * wink-nlp's `its` helpers (`its.stem`, `its.sentiment`…), as plain values. Its typings declare
 * them as methods, and `its.stem` with a signature `out()` does not accept, though they are
 * stateless functions made to be passed to `out()`; this and {@link tokenValues} are the one
 * place that says so.
 */
export const winkIts = (): Readonly<Record<keyof ItsHelpers, unknown>> => winkNlp().its;

/** `its` (one of {@link winkIts}) of every token of a document. */
export function tokenValues<T>(doc: Document, its: unknown): T[] {
  return doc.tokens().out(its as ItsFunction<T>) as T[];
}

/**
 * Words of asking, not of what is asked ("I want…", "I would like…", "I need…"), left out on
 * top of wink-nlp's stop words: any intent can start with them, and an unrelated "I like turtles"
 * must not look like "I would like to return this product". Compared by stem.
 */
/**
 * Question words kept although wink-nlp lists them as stop words: "where is my order" and
 * "cancel my order" differ by nothing else once stop words are out.
 */
const QUESTION_WORDS = new Set(['where', 'when', 'how', 'why', 'what', 'who', 'which']);

const REQUEST_WORDS = new Set(['want', 'like', 'need', 'wish', 'would', 'let']);

/** Contractions wink-nlp leaves whole ("i'm", "it's") whose first word is a stop word. */
const PRONOUN_CONTRACTION =
  /^(i|you|we|they|he|she|it|that|there|here|what|who|let)['’](m|re|s|ve|ll|d)$/;

/**
 * The placeholder term of a token type, or `undefined` when the type has none. A placeholder
 * counts once per message, weighs as a framing word, and is ignored when no example has it.
 */
const PLACEHOLDERS: Readonly<Record<string, string>> = {
  number: '<number>',
  ordinal: '<number>',
  email: '<email>',
  url: '<url>',
  time: '<time>',
  currency: '<currency>',
};

/**
 * Words that frame a message rather than say what it is about: greetings, thanks, goodbyes (by
 * stem), and every word wink-nlp tags as an interjection ("hi", "ok", "wow"). They weigh
 * {@link FRAMING_WEIGHT}: in "Good evening, where is my order?" the order decides; a message of
 * framing words alone ("good evening") matches as before, since scaling every weight of a vector
 * leaves its cosines as they were.
 */
const FRAMING_STEMS = new Set([
  'hi',
  'hello',
  'hey',
  'hiya',
  'good',
  'morn',
  'afternoon',
  'even',
  'night',
  'thank',
  'cheer',
  'bye',
  'goodby',
  'ok',
  'okay',
]);
export const FRAMING_WEIGHT = 0.5;

const isPlaceholder = (term: string) => term.startsWith('<') && term.endsWith('>');

/** One feature of a message: its term, and whether the word only frames the message. */
export interface Feature {
  readonly term: string;
  readonly framing: boolean;
}

/** The features of a document read by {@link winkNlp} (see the module's comment). */
export function featureTerms(doc: Document): Feature[] {
  const its = winkIts();
  const types = tokenValues<string>(doc, its.type);
  const normals = tokenValues<string>(doc, its.normal);
  const stems = tokenValues<string>(doc, its.stem);
  const stops = tokenValues<boolean>(doc, its.stopWordFlag);
  const tags = tokenValues<string>(doc, its.pos);
  const features: Feature[] = [];
  types.forEach((type, i) => {
    // A word with a digit in it is a code ("ORD-123456", "A4"), read as a number.
    const placeholder = PLACEHOLDERS[type === 'word' && /\d/.test(normals[i]!) ? 'number' : type];
    if (placeholder) {
      // Once per message: a phone number is several number tokens, and no count of them matters.
      if (!features.some(f => f.term === placeholder)) {
        features.push({ term: placeholder, framing: true });
      }
    } else if (type === 'word' || type === 'hashtag') {
      const normal = normals[i]!;
      const stem = stems[i]!;
      if (
        (!stops[i] || QUESTION_WORDS.has(normal)) &&
        !REQUEST_WORDS.has(stem) &&
        !PRONOUN_CONTRACTION.test(normal)
      ) {
        const framing = tags[i] === 'INTJ' || FRAMING_STEMS.has(stem) || QUESTION_WORDS.has(normal);
        features.push({ term: stem, framing });
      }
    } else if (type === 'emoji' || type === 'emoticon') {
      features.push({ term: normals[i]!, framing: true });
    }
  });
  return features;
}

/** {@link featureTerms} of a text. */
export const featureTermsOf = (text: string): Feature[] => featureTerms(winkNlp().readDoc(text));

/**
 * Each term's weight before IDF, the same at training and at classification: sublinear term
 * frequency (a word repeated counts, but not linearly), × {@link FRAMING_WEIGHT} when every
 * occurrence of the term frames the message.
 */
export function termWeights(features: readonly Feature[]): Map<string, number> {
  const counts = new Map<string, { count: number; framing: boolean }>();
  for (const { term, framing } of features) {
    const seen = counts.get(term);
    counts.set(term, {
      count: (seen?.count ?? 0) + 1,
      framing: (seen?.framing ?? true) && framing,
    });
  }
  return new Map(
    [...counts].map(([term, { count, framing }]) => [
      term,
      (1 + Math.log(count)) * (framing ? FRAMING_WEIGHT : 1),
    ]),
  );
}

/** One term's occurrences: the examples that have it, and its weight in each. */
interface Postings {
  readonly ids: Int32Array;
  readonly weights: Float64Array;
}

/** A model made ready to classify: an inverted index, so a message only touches the examples sharing a word with it. */
export interface IntentClassifier {
  readonly intents: readonly string[];
  readonly termIndex: ReadonlyMap<string, number>;
  readonly idf: Float64Array;
  /** The intent of each example, by the examples' position across all intents. */
  readonly exampleIntent: Int32Array;
  /** Each example's vector, by the same position. */
  readonly exampleVectors: readonly SparseVector[];
  /** By term index: the examples that have the term. */
  readonly postings: readonly (Postings | undefined)[];
  /** By term index: how much each intent owns the term, 0..1 (see {@link compileClassifier}). */
  readonly ownership: readonly ReadonlyMap<number, number>[];
  /** The weight of a word no example has: the IDF of a term one intent has (see the module's comment). */
  readonly unknownIdf: number;
}

/**
 * Prepares a (validated) model for {@link classifyIntent}: the inverted index, and each term's
 * ownership by each intent: the share of the intent's examples that have the term, relative to
 * the intent where that share is highest (1 there). "order" in half the examples of
 * `order_status` and in one example of eight of `refund` is owned 1 by the first, 0.25 by the
 * second; a term as common in two intents is owned 1 by both.
 */
export function compileClassifier(model: BuiltinModel): IntentClassifier {
  const size = model.terms.length;
  const lists = Array.from({ length: size }, () => ({
    ids: [] as number[],
    weights: [] as number[],
  }));
  const shares = Array.from({ length: size }, () => new Map<number, number>());
  const exampleIntent: number[] = [];
  const exampleVectors: SparseVector[] = [];
  model.intents.forEach((intent, i) => {
    for (const vector of intent.examples) {
      for (const [term, weight] of vector) {
        lists[term]!.ids.push(exampleIntent.length);
        lists[term]!.weights.push(weight);
        const share = shares[term]!;
        share.set(i, (share.get(i) ?? 0) + 1 / intent.examples.length);
      }
      exampleIntent.push(i);
      exampleVectors.push(vector);
    }
  });
  const ownership = shares.map(share => {
    const most = Math.max(...share.values());
    return new Map([...share].map(([intent, value]) => [intent, value / most]));
  });
  return {
    intents: model.intents.map(intent => intent.name),
    termIndex: new Map(model.terms.map((term, i) => [term, i])),
    idf: Float64Array.from(model.idf),
    exampleIntent: Int32Array.from(exampleIntent),
    exampleVectors,
    postings: lists.map(list =>
      list.ids.length === 0
        ? undefined
        : { ids: Int32Array.from(list.ids), weights: Float64Array.from(list.weights) },
    ),
    ownership,
    unknownIdf: inverseDocumentFrequency(model.intents.length, 1),
  };
}

/** The dot product of two sparse vectors sorted by term. */
function sparseDot(a: SparseVector, b: SparseVector): number {
  let sum = 0;
  for (let i = 0, j = 0; i < a.length && j < b.length;) {
    const [ta, wa] = a[i]!;
    const [tb, wb] = b[j]!;
    if (ta === tb) {
      sum += wa * wb;
      i++;
      j++;
    } else if (ta < tb) i++;
    else j++;
  }
  return sum;
}

/**
 * An intent's similarity: the best cosine between the message and the sum of its {@link MERGED}
 * nearest examples or fewer. `examples` are the intent's examples sharing a term with the message,
 * with their dot products, best first; the examples are unit vectors, so the sum's squared norm
 * is `k + 2 × Σ eᵢ·eⱼ`.
 */
function intentSimilarity(
  classifier: IntentClassifier,
  examples: readonly { id: number; dot: number }[],
  norm: number,
): number {
  let best = 0;
  let dots = 0;
  let cross = 0;
  for (let k = 0; k < Math.min(MERGED, examples.length); k++) {
    const { id, dot } = examples[k]!;
    for (let j = 0; j < k; j++) {
      cross += sparseDot(
        classifier.exampleVectors[id]!,
        classifier.exampleVectors[examples[j]!.id]!,
      );
    }
    dots += dot;
    best = Math.max(best, dots / (norm * Math.sqrt(k + 1 + 2 * cross)));
  }
  return Math.min(1, best);
}

export interface IntentScore {
  readonly name: string;
  /** The similarity, 0..1 (see the module's comment). */
  readonly score: number;
}

export interface Classification {
  /** The best intent and its confidence; absent below the minimum confidence (a fallback). */
  readonly intent?: { readonly name: string; readonly confidence: number } | undefined;
  /** The intents with a similarity above 0, best first (ties by name), at most {@link RANKING_SIZE}. */
  readonly ranking: readonly IntentScore[];
}

const round3 = (value: number) => Math.round(value * 1000) / 1000;

/**
 * Classifies a message's features ({@link featureTerms}). `minConfidence` (0..1, default
 * {@link DEFAULT_MIN_CONFIDENCE}) is the confidence below which no intent is answered.
 */
export function classifyIntent(
  classifier: IntentClassifier,
  features: readonly Feature[],
  minConfidence = DEFAULT_MIN_CONFIDENCE,
): Classification {
  let normSquared = 0;
  const known: [index: number, weight: number][] = [];
  for (const [term, frequency] of termWeights(features)) {
    const index = classifier.termIndex.get(term);
    // A number or an email the examples never had says nothing about the message's intent.
    if (index === undefined && isPlaceholder(term)) continue;
    const weight =
      frequency * (index === undefined ? classifier.unknownIdf : classifier.idf[index]!);
    normSquared += weight * weight;
    if (index !== undefined) known.push([index, weight]);
  }
  if (known.length === 0) return { ranking: [] };
  const norm = Math.sqrt(normSquared);

  // Dot products with the examples sharing a term, grouped by intent; each intent's owned weight.
  const dots = new Map<number, number>();
  const owned = new Map<number, number>();
  for (const [index, weight] of known) {
    for (const [intent, share] of classifier.ownership[index]!) {
      owned.set(intent, (owned.get(intent) ?? 0) + weight * weight * share);
    }
    const postings = classifier.postings[index];
    if (!postings) continue;
    for (let i = 0; i < postings.ids.length; i++) {
      const id = postings.ids[i]!;
      dots.set(id, (dots.get(id) ?? 0) + weight * postings.weights[i]!);
    }
  }
  const byIntent = new Map<number, { id: number; dot: number }[]>();
  for (const [id, dot] of dots) {
    const intent = classifier.exampleIntent[id]!;
    const list = byIntent.get(intent) ?? [];
    list.push({ id, dot });
    byIntent.set(intent, list);
  }

  const ranking = [...byIntent.entries()]
    .map(([intent, examples]) => {
      const nearest = intentSimilarity(
        classifier,
        examples.sort((a, b) => b.dot - a.dot || a.id - b.id),
        norm,
      );
      const coverage = Math.sqrt(owned.get(intent) ?? 0) / norm;
      return { name: classifier.intents[intent]!, score: Math.min(1, (nearest + coverage) / 2) };
    })
    .sort((a, b) => b.score - a.score || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out = ranking
    .slice(0, RANKING_SIZE)
    .map(entry => ({ name: entry.name, score: round3(entry.score) }));
  const [best, second] = ranking;
  if (!best || best.score <= 0) return { ranking: out };
  const confidence = best.score * Math.min(1, 3 * (1 - (second?.score ?? 0) / best.score));
  return confidence > 0 && confidence >= minConfidence
    ? { intent: { name: best.name, confidence: round3(confidence) }, ranking: out }
    : { ranking: out };
}

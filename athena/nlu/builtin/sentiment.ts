import type { Document, ItsFunction } from 'wink-nlp';
import type { NluSentiment } from '../provider.js';
import { winkIts } from './classifier.js';

/**
 * A message's sentiment, from wink-nlp's English model: its lexicon (AFINN-style word scores,
 * emoji and emoticons) with negation ("not good" is negative) and intensifiers, averaged over
 * the document to a score in −1..1.
 *
 * The labels' thresholds are ±0.25, not ±0.2: the lexicon gives a plain request a small positive
 * score ("I want a refund" and "I want to talk to a person" score 0.2, from "want"), and a request
 * is not praise. A clear word of feeling scores well past them ("thanks" 0.4, "terrible" about
 * −0.26 even diluted in a sentence, "not happy" −0.75).
 */

/** At or below: negative. */
export const NEGATIVE_AT_MOST = -0.25;
/** At or above: positive. */
export const POSITIVE_AT_LEAST = 0.25;

/** The label of a score (see the thresholds above). */
export function sentimentLabel(score: number): NluSentiment['label'] {
  if (score <= NEGATIVE_AT_MOST) return 'negative';
  if (score >= POSITIVE_AT_LEAST) return 'positive';
  return 'neutral';
}

/** The sentiment of a document read by `winkNlp()` (classifier.ts): score rounded to 3 decimals, and its label. */
export function sentimentOf(doc: Document): NluSentiment {
  const raw = Number(doc.out(winkIts().sentiment as ItsFunction<number>));
  const score = Number.isFinite(raw) ? Math.round(Math.max(-1, Math.min(1, raw)) * 1000) / 1000 : 0;
  return { score, label: sentimentLabel(score) };
}

import { describe, expect, it } from 'vitest';
import { winkNlp } from './classifier.js';
import { NEGATIVE_AT_MOST, POSITIVE_AT_LEAST, sentimentLabel, sentimentOf } from './sentiment.js';

const sentiment = (text: string) => sentimentOf(winkNlp().readDoc(text));

describe('sentiment', () => {
  it('scores clear feelings past the thresholds, negation included', () => {
    expect(sentiment('I love this, thank you so much!')).toEqual({
      score: 0.385,
      label: 'positive',
    });
    expect(sentiment('This is terrible, I hate waiting.')).toEqual({
      score: -0.263,
      label: 'negative',
    });
    expect(sentiment("I'm not happy")).toEqual({ score: -0.75, label: 'negative' });
    expect(sentiment('I am very very angry!!! worst service ever')).toEqual({
      score: -0.633,
      label: 'negative',
    });
  });

  it('leaves plain requests neutral (the lexicon gives "want" 0.2)', () => {
    expect(sentiment('I want a refund')).toEqual({ score: 0.2, label: 'neutral' });
    expect(sentiment('Where is my order?')).toEqual({ score: 0, label: 'neutral' });
    expect(sentiment('')).toEqual({ score: 0, label: 'neutral' });
  });

  it('labels by the documented thresholds, inclusive', () => {
    expect([NEGATIVE_AT_MOST, POSITIVE_AT_LEAST]).toEqual([-0.25, 0.25]);
    expect(sentimentLabel(-0.25)).toBe('negative');
    expect(sentimentLabel(-0.249)).toBe('neutral');
    expect(sentimentLabel(0.249)).toBe('neutral');
    expect(sentimentLabel(0.25)).toBe('positive');
  });
});

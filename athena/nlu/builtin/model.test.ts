import { describe, expect, it } from 'vitest';
import { MODEL_FORMAT_VERSION, ModelInputError, readModel, trainModel } from './model.js';

const minimal = {
  language: 'en',
  intents: [
    { name: 'refund', examples: ['I want a refund', 'give me my money back'] },
    { name: 'human', examples: ['agent please', 'let me talk to a person'] },
  ],
};

/** The issues a training input is refused with (fails the test when it is accepted). */
function issuesOf(input: unknown): readonly string[] {
  try {
    trainModel(input);
  } catch (error) {
    expect(error).toBeInstanceOf(ModelInputError);
    return (error as ModelInputError).issues;
  }
  throw new Error('the input was accepted');
}

const withPattern = (pattern: string) => ({
  ...minimal,
  entities: { patterns: [{ name: 'order_id', pattern }] },
});

describe('trainModel', () => {
  it('stores the vocabulary, the IDF over intents and one unit vector per example', () => {
    const model = trainModel(minimal);
    expect(model.format).toBe('nexus-builtin-nlu');
    expect(model.version).toBe(MODEL_FORMAT_VERSION);
    expect(model.id).toMatch(/^[0-9a-f]{32}$/);
    // Stop words ("back", "me", "to") and words of asking ("want", "let") are out.
    expect(model.terms).toEqual(['agent', 'money', 'person', 'refund', 'talk']);
    // ln((1 + 2) / (1 + 1)) + 1: every term is said by one intent of two.
    expect(model.idf).toEqual(Array(5).fill(1.405465));
    expect(model.intents).toEqual([
      { name: 'refund', examples: [[[3, 1]], [[1, 1]]] },
      {
        name: 'human',
        examples: [
          [[0, 1]],
          [
            [2, 0.707107],
            [4, 0.707107],
          ],
        ],
      },
    ]);
    expect(model.handoffIntents).toEqual([]);
    expect(model.entities).toEqual({ lists: [], patterns: [] });
  });

  it('is deterministic: the same input gives the same JSON, another input another id', () => {
    const input = {
      ...minimal,
      handoffIntents: ['human'],
      entities: {
        lists: [{ name: 'product', entries: [{ value: 'Router', synonyms: ['wifi box'] }] }],
        patterns: [{ name: 'order_id', pattern: 'ORD-\\d{6}', ignoreCase: true }],
      },
    };
    const first = JSON.stringify(trainModel(input));
    expect(JSON.stringify(trainModel(structuredClone(input)))).toBe(first);
    const other = trainModel({ ...input, handoffIntents: [] });
    expect(other.id).not.toBe(JSON.parse(first).id);
    expect(trainModel(input).entities.patterns).toEqual([
      { name: 'order_id', pattern: 'ORD-\\d{6}', flags: 'giu' },
    ]);
  });

  it('refuses an intent without examples, naming the field', () => {
    expect(issuesOf({ language: 'en', intents: [{ name: 'refund', examples: [] }] })).toEqual([
      'intents[0].examples: an intent needs at least one example',
    ]);
  });

  it('refuses what is too large: intents, examples, characters', () => {
    const many = Array.from({ length: 201 }, (_, i) => ({ name: `i${i}`, examples: [`word${i}`] }));
    expect(issuesOf({ language: 'en', intents: many })).toEqual([
      'intents: must have at most 200 intents',
    ]);
    const examples = Array.from({ length: 501 }, (_, i) => `example ${i}`);
    expect(issuesOf({ language: 'en', intents: [{ name: 'a', examples }] })).toEqual([
      'intents[0].examples: must have at most 500 examples',
    ]);
    expect(
      issuesOf({ language: 'en', intents: [{ name: 'a', examples: ['ok', 'x'.repeat(501)] }] }),
    ).toEqual(['intents[0].examples[1]: must be at most 500 characters']);
  });

  it('refuses names used twice, an example of two intents, an unknown handoff intent', () => {
    expect(
      issuesOf({
        language: 'en',
        intents: [
          { name: 'refund', examples: ['refund please'] },
          { name: 'refund', examples: ['money back'] },
          { name: 'other', examples: ['Refund, please!'] },
        ],
        handoffIntents: ['human'],
      }),
    ).toEqual([
      'intents[1].name: "refund" is the name of an earlier intent',
      'intents[2].examples[0]: "Refund, please!" is also an example of intent "refund"',
      'handoffIntents[0]: "human" is not the name of an intent',
    ]);
  });

  it('refuses an example the classifier cannot use', () => {
    expect(
      issuesOf({ language: 'en', intents: [{ name: 'a', examples: ['refund', 'is it?'] }] }),
    ).toEqual([
      'intents[0].examples[1]: "is it?" has no word the classifier can use (only stop words, punctuation or spaces)',
    ]);
  });

  it('refuses a language other than English, and unknown fields', () => {
    expect(issuesOf({ ...minimal, language: 'fr' })).toEqual([
      'language: Invalid literal value, expected "en"',
    ]);
    expect(issuesOf({ ...minimal, intent: [] })).toEqual([
      "(input): Unrecognized key(s) in object: 'intent'",
    ]);
  });

  it('refuses entity names taken by a built-in kind or another list or pattern', () => {
    expect(
      issuesOf({
        ...minimal,
        entities: {
          lists: [
            { name: 'Email', entries: [{ value: 'a' }] },
            { name: 'product', entries: [{ value: 'b' }] },
          ],
          patterns: [{ name: 'product', pattern: 'x+' }],
        },
      }),
    ).toEqual([
      'entities.lists[0].name: "Email" is already the name of a built-in entity or another list or pattern',
      'entities.patterns[0].name: "product" is already the name of a built-in entity or another list or pattern',
    ]);
  });

  it('refuses a list entry or synonym of too many words', () => {
    expect(
      issuesOf({
        ...minimal,
        entities: {
          lists: [
            {
              name: 'p',
              entries: [
                {
                  value: 'a',
                  synonyms: ['one two three four five six seven eight nine ten, eleven twelve'],
                },
              ],
            },
          ],
        },
      }),
    ).toEqual([
      'entities.lists[0].entries[0].synonyms[0]: must be at most 12 words (a symbol counts as one)',
    ]);
  });

  it('refuses lists of more than 50,000 entries and synonyms in all', () => {
    const entries = Array.from({ length: 5_000 }, (_, i) => ({
      value: `p${i}`,
      synonyms: Array.from({ length: 9 }, (_, k) => `p${i} s${k}`),
    }));
    const lists = [0, 1].map(n => ({ name: `list${n}`, entries }));
    expect(
      issuesOf({
        ...minimal,
        entities: { lists: [...lists, { name: 'x', entries: [{ value: 'y' }] }] },
      }),
    ).toEqual(['entities.lists: must have at most 50000 entries and synonyms in all (has 100001)']);
  });

  it('refuses a pattern that is not a regexp, matches the empty string, or nests quantifiers', () => {
    expect(issuesOf(withPattern('ORD-(\\d+'))).toEqual([
      expect.stringMatching(
        /^entities\.patterns\[0\]\.pattern: is not a valid regular expression \(Invalid regular expression: .*\)$/,
      ),
    ]);
    for (const empty of ['\\d*', 'x?', '(?=ORD)', '\\b', '$', 'a|']) {
      expect(issuesOf(withPattern(empty)), empty).toEqual([
        'entities.patterns[0].pattern: can match the empty string',
      ]);
    }
    for (const nested of ['(a+)+$', '(\\d{1,3}[ -]?)*x', '(?:ab?)+', '((x)+y)+']) {
      expect(issuesOf(withPattern(nested)), nested).toEqual([
        'entities.patterns[0].pattern: repeats a group that holds a quantifier (e.g. "(a+)+"): such a pattern can take exponential time',
      ]);
    }
    for (const fine of [
      'ORD-\\d{6}',
      '(ab)+',
      '(?<value>\\d+)-[A-Z]{2}',
      '[(+*]+',
      '\\(\\d+\\)+',
      '(\\d+){2}',
    ]) {
      expect(trainModel(withPattern(fine)).entities.patterns[0]!.pattern, fine).toBe(fine);
    }
  });

  it('lists every problem at once', () => {
    expect(
      issuesOf({
        language: 'en',
        intents: [
          { name: '', examples: ['hello'] },
          { name: 'b', examples: [] },
        ],
      }),
    ).toEqual([
      'intents[0].name: must not be empty',
      'intents[1].examples: an intent needs at least one example',
    ]);
  });
});

describe('readModel', () => {
  const model = trainModel(minimal);

  it('reads a stored model back (after a JSON round trip)', () => {
    const read = readModel(JSON.parse(JSON.stringify(model)));
    expect(read).toEqual({ ok: true, model });
  });

  it('says why a stored value is not a usable model', () => {
    expect(readModel('nope')).toEqual({
      ok: false,
      reason: 'not a built-in NLU model (model: Expected object, received string)',
    });
    expect(readModel({ ...model, version: MODEL_FORMAT_VERSION + 1 })).toEqual({
      ok: false,
      reason: `the model is of format version ${MODEL_FORMAT_VERSION + 1}, this hub reads version ${MODEL_FORMAT_VERSION}: train it again`,
    });
    expect(readModel({ ...model, idf: [1] })).toEqual({
      ok: false,
      reason: 'the model has not one idf per term',
    });
    const outOfRange = structuredClone(model);
    outOfRange.intents[0]!.examples[0] = [[99, 1]];
    expect(readModel(outOfRange)).toEqual({
      ok: false,
      reason: 'the model has a vector with a term index out of range',
    });
    const badPattern = structuredClone(model) as { entities: { patterns: unknown[] } };
    badPattern.entities.patterns = [{ name: 'p', pattern: '(a+)+$', flags: 'g' }];
    expect(readModel(badPattern)).toEqual({
      ok: false,
      reason:
        'entities.patterns[0].pattern: repeats a group that holds a quantifier (e.g. "(a+)+"): such a pattern can take exponential time',
    });
    badPattern.entities.patterns = [{ name: 'p', pattern: 'a', flags: 'gy' }];
    expect(readModel(badPattern)).toEqual({
      ok: false,
      reason: 'not a built-in NLU model (entities.patterns[0].flags: Invalid)',
    });
    expect(readModel({ ...model, intents: [] })).toEqual({
      ok: false,
      reason: 'not a built-in NLU model (intents: Array must contain at least 1 element(s))',
    });
  });
});

import type { Document, ItsFunction } from 'wink-nlp';
import { normalisePhone } from '../../../domain/phone.js';
import type { NluEntity } from '../provider.js';
import { winkIts } from './classifier.js';
import type { BuiltinModel } from './model.js';

/**
 * The built-in NLU's entities: the built-in kinds (`email`, `url`, `date`, `phone`, `number`)
 * and the tenant's lists and patterns, each with its offsets (`start`, `end`: UTF-16 indexes of
 * the original text, `text === message.slice(start, end)`).
 *
 * Built-in kinds never overlap one another: they are taken in the order email, url, date,
 * phone, number, and a later one that overlaps an earlier one is dropped (the digits of an
 * email, URL, date or phone number are not also numbers). Tenant lists and patterns are matched
 * independently of the built-ins and of one another: a list entry that is also a number is
 * reported as both, and the caller picks.
 *
 * Why our own passes rather than wink-nlp's entities for most kinds: wink-nlp splits a phone
 * number written with spaces into separate CARDINALs, misses `www.` and `localhost` URLs, and
 * gives no character offsets. Dates use wink-nlp's DATE entities (it knows many forms: "Dec 24",
 * "next Monday", "last week"), plus our own pass for the forms {@link resolveDate} resolves, so
 * those never depend on the language model.
 */

export const BUILTIN_ENTITY_KINDS = ['email', 'phone', 'date', 'number', 'url'] as const;

/** Words of a list entry or synonym at most (a symbol counts as one): the longest phrase a lookup tries. */
export const LIST_PHRASE_MAX_WORDS = 12;
/** Longest pattern source a tenant may upload. */
export const PATTERN_SOURCE_MAX_CHARS = 200;
/** A pattern reads at most this much of a message: with the checks of {@link patternProblem}, it bounds a match's cost. */
export const PATTERN_INPUT_MAX_CHARS = 1_000;
/** Matches kept per pattern and per message. */
export const PATTERN_MATCHES_MAX = 20;

export interface ExtractOptions {
  /** What today, tomorrow and yesterday are relative to. */
  readonly now: Date;
  /** The IANA time zone whose calendar date `now` is read in. @defaultValue `'UTC'` */
  readonly timeZone?: string | undefined;
}

/** A tenant list made ready: phrase (normalised words, joined by a space) → [list, canonical value] pairs. */
export interface CompiledEntities {
  readonly listNames: readonly string[];
  readonly phrases: ReadonlyMap<string, readonly (readonly [list: number, value: string])[]>;
  /** Words of the longest phrase: the longest run of words a lookup tries. */
  readonly maxWords: number;
  readonly patterns: readonly { readonly name: string; readonly regexp: RegExp }[];
}

// ---------------------------------------------------------------- tenant patterns, checked

/** `g`, `i` when asked, and `u` when the source is valid with it (Unicode classes such as `\p{L}` need it). */
export function patternFlags(source: string, ignoreCase: boolean): string {
  const base = ignoreCase ? 'gi' : 'g';
  try {
    new RegExp(source, `${base}u`);
    return `${base}u`;
  } catch {
    return base;
  }
}

/**
 * Texts a pattern is tried on for an empty match: one that can match the empty string does so
 * somewhere in one of them (a heuristic; a lookaround-only pattern also gets its own letters).
 */
const EMPTY_MATCH_PROBES = ['', ' ', 'a', 'A', '0', '_', '-', 'a b', 'ab 12 .,;'];

/**
 * Why a tenant's pattern cannot be used, or `undefined` when it can: it must compile, must not
 * match the empty string (it would match between every two characters), and must not nest a
 * quantifier inside a repeated group (`(a+)+`, `(\d{1,3}[ -]?)*`): the shape whose backtracking
 * grows exponentially with the input (catastrophic backtracking). The nesting check is a
 * conservative reading of the source (star height), not a proof: what it lets through is
 * bounded by {@link PATTERN_INPUT_MAX_CHARS}.
 */
export function patternProblem(source: string, ignoreCase = false): string | undefined {
  let regexp: RegExp;
  try {
    regexp = new RegExp(source, patternFlags(source, ignoreCase));
  } catch (error) {
    return `is not a valid regular expression (${(error as Error).message})`;
  }
  // The pattern's own letters and digits too: a lookahead-only "(?=ORD)" matches nothing in "ORD".
  const literal = source.replace(/\\./g, '').replace(/[^\p{L}\p{N}]/gu, '');
  for (const probe of [...EMPTY_MATCH_PROBES, literal, ` ${literal} `]) {
    regexp.lastIndex = 0;
    for (let match = regexp.exec(probe); match; match = regexp.exec(probe)) {
      if (match[0].length === 0) return 'can match the empty string';
    }
  }
  if (hasNestedQuantifier(source)) {
    return 'repeats a group that holds a quantifier (e.g. "(a+)+"): such a pattern can take exponential time';
  }
  return undefined;
}

/** `*`, `+`, `?`, `{n,}` or `{n,m}` at `source[i]`: its length and whether it is unbounded. */
function quantifierAt(source: string, i: number): { length: number; unbounded: boolean } | null {
  const c = source[i];
  let length = 0;
  let unbounded = false;
  let ranged = true;
  if (c === '*' || c === '+') [length, unbounded] = [1, true];
  else if (c === '?') length = 1;
  else if (c === '{') {
    const braces = /^\{(\d+)(,(\d*))?\}/.exec(source.slice(i));
    if (!braces) return null;
    length = braces[0].length;
    unbounded = braces[2] !== undefined && braces[3] === '';
    ranged = braces[2] !== undefined && braces[3] !== braces[1];
  } else return null;
  if (!ranged) return null;
  if (source[i + length] === '?') length += 1; // lazy: same cost
  return { length, unbounded };
}

/** Whether an unbounded quantifier applies to a group that itself holds a quantifier (see {@link patternProblem}). */
function hasNestedQuantifier(source: string): boolean {
  const groups: boolean[] = [false];
  let inClass = false;
  for (let i = 0; i < source.length;) {
    const c = source[i]!;
    if (c === '\\') {
      i += 2;
    } else if (inClass) {
      if (c === ']') inClass = false;
      i += 1;
    } else if (c === '[') {
      inClass = true;
      i += 1;
    } else if (c === '(') {
      groups.push(false);
      // Skip the group's kind ("?:", "?=", "?<name>"…): its "?" is not a quantifier.
      const kind = /^\((\?(<[=!]|<[^>=!][^>]*>|[:=!]))?/.exec(source.slice(i))!;
      i += kind[0].length;
    } else if (c === ')') {
      const quantified = groups.pop() ?? false;
      if (groups.length === 0) groups.push(false); // an unbalanced ")" (the RegExp compiled anyway)
      i += 1;
      const quantifier = quantifierAt(source, i);
      if (quantifier) {
        if (quantified && quantifier.unbounded) return true;
        i += quantifier.length;
      }
      if (quantified || quantifier) groups[groups.length - 1] = true;
    } else {
      const quantifier = quantifierAt(source, i);
      if (quantifier) {
        groups[groups.length - 1] = true;
        i += quantifier.length;
      } else {
        i += 1;
      }
    }
  }
  return false;
}

// ---------------------------------------------------------------- tenant lists

/** Words and single symbols: what a list phrase and a message are compared by. */
const WORD = /[\p{L}\p{N}\p{M}]+|[^\s\p{L}\p{N}\p{M}]/gu;

/** Case and accents do not count: "Café" and "cafe" are the same word. */
const normaliseWord = (word: string) => word.normalize('NFKD').replace(/\p{M}/gu, '').toLowerCase();

/** The words of a text as list phrases are compared (symbols are words of their own): "Wi-Fi" is `wi`, `-`, `fi`. */
export function phraseWords(text: string): { word: string; start: number; end: number }[] {
  return [...text.matchAll(WORD)].map(match => ({
    word: normaliseWord(match[0]),
    start: match.index,
    end: match.index + match[0].length,
  }));
}

/** Prepares a model's lists and patterns for {@link extractEntities}. */
export function compileEntities(entities: BuiltinModel['entities']): CompiledEntities {
  const phrases = new Map<string, [number, string][]>();
  let maxWords = 0;
  entities.lists.forEach((list, l) => {
    for (const entry of list.entries) {
      for (const text of [entry.value, ...entry.synonyms]) {
        const words = phraseWords(text).map(w => w.word);
        // Training refuses longer phrases; one in a stored model is left out, not tried.
        if (words.length === 0 || words.length > LIST_PHRASE_MAX_WORDS) continue;
        maxWords = Math.max(maxWords, words.length);
        const key = words.join(' ');
        const found = phrases.get(key) ?? [];
        // The first entry that claims a phrase in a list keeps it.
        if (!found.some(([list]) => list === l)) found.push([l, entry.value]);
        phrases.set(key, found);
      }
    }
  });
  return {
    listNames: entities.lists.map(list => list.name),
    phrases,
    maxWords,
    patterns: entities.patterns.map(p => ({
      name: p.name,
      regexp: new RegExp(p.pattern, p.flags),
    })),
  };
}

/** Each list's matches: the longest phrase at the leftmost word, then on after it (per list). */
function listEntities(text: string, compiled: CompiledEntities): NluEntity[] {
  if (compiled.maxWords === 0) return [];
  const words = phraseWords(text);
  const freeFrom = new Array<number>(compiled.listNames.length).fill(0);
  const out: NluEntity[] = [];
  for (let i = 0; i < words.length; i++) {
    let key = '';
    const keys: string[] = [];
    for (let n = 0; n < compiled.maxWords && i + n < words.length; n++) {
      key = n === 0 ? words[i]!.word : `${key} ${words[i + n]!.word}`;
      keys.push(key);
    }
    for (let n = keys.length; n >= 1; n--) {
      for (const [list, value] of compiled.phrases.get(keys[n - 1]!) ?? []) {
        if (freeFrom[list]! > i) continue;
        const start = words[i]!.start;
        const end = words[i + n - 1]!.end;
        out.push({
          kind: compiled.listNames[list]!,
          value,
          text: text.slice(start, end),
          start,
          end,
        });
        freeFrom[list] = i + n;
      }
    }
  }
  return out;
}

/** Each pattern's matches in the first {@link PATTERN_INPUT_MAX_CHARS}; a named group `value` gives the value. */
function patternEntities(text: string, compiled: CompiledEntities): NluEntity[] {
  const input = text.slice(0, PATTERN_INPUT_MAX_CHARS);
  const out: NluEntity[] = [];
  for (const { name, regexp } of compiled.patterns) {
    regexp.lastIndex = 0;
    let kept = 0;
    for (let match = regexp.exec(input); match && kept < PATTERN_MATCHES_MAX;) {
      if (match[0].length === 0) {
        regexp.lastIndex += 1; // a lookaround-only match: step over it
      } else {
        const value = match.groups?.value ?? match[0];
        out.push({
          kind: name,
          value,
          text: match[0],
          start: match.index,
          end: match.index + match[0].length,
        });
        kept += 1;
      }
      match = regexp.exec(input);
    }
  }
  return out;
}

// ---------------------------------------------------------------- built-in kinds

interface Span {
  readonly kind: (typeof BUILTIN_ENTITY_KINDS)[number];
  readonly value: string;
  readonly start: number;
  readonly end: number;
}

/** The WHATWG HTML `input[type=email]` grammar, with a boundary before it. */
const EMAIL =
  /(?<![\p{L}\p{N}.!#$%&'*+/=?^_`{|}~-])[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+/gu;

function emails(text: string): Span[] {
  return [...text.matchAll(EMAIL)].map(match => {
    const at = match[0].lastIndexOf('@');
    const value = match[0].slice(0, at) + match[0].slice(at).toLowerCase();
    return { kind: 'email', value, start: match.index, end: match.index + match[0].length };
  });
}

const URL_CANDIDATE = /(?<![\p{L}\p{N}@./-])(?:https?:\/\/|www\.)[^\s<>"'`]+/giu;

/** Sentence punctuation after a URL is not part of it; a ")" is, when the URL opened one. */
function trimUrl(candidate: string): string {
  let url = candidate;
  for (;;) {
    const last = url.at(-1);
    if (last === undefined) return url;
    if ('.,;:!?\'"]}'.includes(last)) url = url.slice(0, -1);
    else if (last === ')' && url.split('(').length <= url.split(')').length - 1) {
      url = url.slice(0, -1);
    } else return url;
  }
}

/** `http(s)://…` and `www.…` (value: the WHATWG URL's `href`, `https://` put before a `www.`). */
function urls(text: string): Span[] {
  const out: Span[] = [];
  for (const match of text.matchAll(URL_CANDIDATE)) {
    const url = trimUrl(match[0]);
    const withScheme = /^https?:\/\//i.test(url) ? url : `https://${url}`;
    if (!URL.canParse(withScheme)) continue;
    const parsed = new URL(withScheme);
    if (!parsed.hostname.includes('.') && parsed.hostname !== 'localhost') continue;
    out.push({
      kind: 'url',
      value: parsed.href,
      start: match.index,
      end: match.index + url.length,
    });
  }
  return out;
}

/** A phone number written with a `+` (or `00`), or in 3+ groups, or with an area code in parentheses. */
const PHONE_CANDIDATE = /(?<![\p{L}\p{N}_+])(?:\+\s?)?\(?\d[\d ().-]{4,24}\d(?![\p{L}\p{N}_])/gu;
const PHONE_SEPARATOR = /^(?: ?\(|\) ?|\)-|[ .-])$/;
const PHONE_MIN_DIGITS = 7;
const PHONE_MAX_DIGITS = 15;

/**
 * Reads a candidate as a phone number, dropping trailing groups ("call +1 555 123 4567 2
 * times"): the groups must be joined by one separator (space, dash, dot, parentheses), every
 * group after the first (after the second with a country code) have 2 digits or more, and the
 * digits be 7 to 15 (E.164). With `+` or
 * `00`, the value is the E.164 number (`domain/phone.ts`); without, the country is unknown and
 * the value is the digits as written.
 */
function readPhone(candidate: string): { length: number; value: string } | undefined {
  const groups = [...candidate.matchAll(/\d+/g)];
  const prefix = candidate.slice(0, groups[0]!.index);
  const international = prefix.startsWith('+') || candidate.startsWith('00');
  for (let count = groups.length; count >= 1; count--) {
    const kept = groups.slice(0, count);
    const last = kept.at(-1)!;
    const end = last.index + last[0].length;
    const digits = kept.map(g => g[0]).join('');
    if (digits.length < PHONE_MIN_DIGITS) return undefined;
    if (digits.length > PHONE_MAX_DIGITS) continue;
    // After a "+" and the country code, one digit may follow ("+33 1 23 45 67 89"); past it,
    // a group of one digit is what follows the number ("+1 555 123 4567 2 times").
    if (kept.slice(international ? 2 : 1).some(g => g[0].length < 2)) continue;
    const separators = kept
      .slice(1)
      .map((g, i) => candidate.slice(kept[i]!.index + kept[i]![0].length, g.index));
    if (!separators.every(s => PHONE_SEPARATOR.test(s))) continue;
    const parenthesised = candidate.slice(0, end).includes('(');
    if (!international && count < 3 && !parenthesised) continue;
    if (international) {
      const value = normalisePhone(candidate.slice(0, end));
      if (value?.startsWith('+')) return { length: end, value };
      continue;
    }
    return { length: end, value: digits };
  }
  return undefined;
}

function phones(text: string): Span[] {
  const out: Span[] = [];
  for (const match of text.matchAll(PHONE_CANDIDATE)) {
    const phone = readPhone(match[0]);
    if (phone) {
      out.push({
        kind: 'phone',
        value: phone.value,
        start: match.index,
        end: match.index + phone.length,
      });
    }
  }
  return out;
}

const NUMBER =
  /(?<![\p{L}\p{N}_.,])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\p{L}\p{N}_]|[.,]\d)/gu;

/** "1,000.50" → "1000.5", "007" → "7": digits only, no float rounding (order numbers stay exact). */
function canonicalNumber(written: string): string {
  const negative = written.startsWith('-');
  const [whole = '', fraction = ''] = written.replace(/[-,]/g, '').split('.');
  const integer = whole.replace(/^0+(?=\d)/, '');
  const decimals = fraction.replace(/0+$/, '');
  const value = decimals ? `${integer}.${decimals}` : integer;
  return negative && /[1-9]/.test(value) ? `-${value}` : value;
}

function numbers(text: string): Span[] {
  return [...text.matchAll(NUMBER)].map(match => ({
    kind: 'number',
    value: canonicalNumber(match[0]),
    start: match.index,
    end: match.index + match[0].length,
  }));
}

// ---------------------------------------------------------------- dates

const MONTHS = [
  'jan',
  'feb',
  'mar',
  'apr',
  'may',
  'jun',
  'jul',
  'aug',
  'sep',
  'oct',
  'nov',
  'dec',
] as const;
const MONTH =
  '(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\\.?';
const DAY = '(\\d{1,2})(?:st|nd|rd|th)?';
const MONTH_DAY = new RegExp(`^${MONTH}\\s+(?:the\\s+)?${DAY}(?:,?\\s+(\\d{4}))?$`);
const DAY_MONTH = new RegExp(`^(?:the\\s+)?${DAY}(?:\\s+of)?\\s+${MONTH}(?:,?\\s+(\\d{4}))?$`);
/**
 * The forms {@link resolveDate} resolves, found by our own pass (wink-nlp finds most of them
 * too, but these must not depend on the language model): numeric dates, and a day with a month
 * name either way round.
 */
const WRITTEN_DATE = new RegExp(
  `(?<![\\p{L}\\p{N}])(?:(?:the\\s+)?\\d{1,2}(?:st|nd|rd|th)?(?:\\s+of)?\\s+${MONTH}|${MONTH}\\s+(?:the\\s+)?\\d{1,2}(?:st|nd|rd|th)?)(?:,?\\s+\\d{4})?(?![\\p{L}\\p{N}]|[-/.]\\d)`,
  'giu',
);
const NUMERIC_DATE =
  /(?<![\p{L}\p{N}_./-])(?:\d{4}-\d{1,2}-\d{1,2}|\d{1,2}([/.-])\d{1,2}\1\d{4})(?![\p{L}\p{N}_]|[./-]\d)/gu;

interface CalendarDate {
  readonly year: number;
  readonly month: number;
  readonly day: number;
}

const dayFormats = new Map<string, Intl.DateTimeFormat>();

/** The calendar date of `now` in `timeZone` (a formatter per zone is kept: making one is slow). */
function calendarDate(now: Date, timeZone: string): CalendarDate {
  let format = dayFormats.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-CA', {
      timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
    });
    dayFormats.set(timeZone, format);
  }
  const parts = Object.fromEntries(format.formatToParts(now).map(p => [p.type, p.value]));
  return { year: Number(parts.year), month: Number(parts.month), day: Number(parts.day) };
}

const dayNumber = (d: CalendarDate) => Date.UTC(d.year, d.month - 1, d.day) / 86_400_000;

function isoDate(d: CalendarDate): string | undefined {
  const date = new Date(Date.UTC(d.year, d.month - 1, d.day));
  // Date.UTC rolls February 30 over to March 2: an impossible date is not resolved.
  if (date.getUTCMonth() !== d.month - 1 || date.getUTCDate() !== d.day) return undefined;
  if (d.year < 1000 || d.year > 9999) return undefined;
  return date.toISOString().slice(0, 10);
}

/** `days` after (or before) today: Date.UTC rolls the day over months and years. */
function shifted(today: CalendarDate, days: number): string {
  return new Date(Date.UTC(today.year, today.month - 1, today.day + days))
    .toISOString()
    .slice(0, 10);
}

/** A day and month without a year: the occurrence nearest today (the future one on a tie). */
function nearest(today: CalendarDate, month: number, day: number): string | undefined {
  let best: { distance: number; iso: string } | undefined;
  for (const year of [today.year + 1, today.year, today.year - 1]) {
    const iso = isoDate({ year, month, day });
    if (!iso) continue;
    const distance = Math.abs(dayNumber({ year, month, day }) - dayNumber(today));
    if (!best || distance < best.distance) best = { distance, iso };
  }
  return best?.iso;
}

const monthNumber = (name: string) =>
  MONTHS.indexOf(name.slice(0, 3) as (typeof MONTHS)[number]) + 1;

/**
 * An ISO date (`YYYY-MM-DD`) for the simple forms, or `undefined`: today, tomorrow, yesterday;
 * `2026-12-24`; `24/12/2026` (also with `.` or `-`; day first when the first number is over 12,
 * month first when the second is; `03/04/2026` is ambiguous and not resolved); `December 24`,
 * `Dec 24th, 2026`, `24 December`, `the 24th of December`. A day and month without a year is
 * the occurrence nearest today ("I ordered on December 24" in January is last December).
 */
export function resolveDate(text: string, today: CalendarDate): string | undefined {
  const said = text.trim().toLowerCase().replace(/\s+/g, ' ');
  if (said === 'today') return shifted(today, 0);
  if (said === 'tomorrow') return shifted(today, 1);
  if (said === 'yesterday') return shifted(today, -1);
  const iso = /^(\d{4})-(\d{1,2})-(\d{1,2})$/.exec(said);
  if (iso) return isoDate({ year: +iso[1]!, month: +iso[2]!, day: +iso[3]! });
  const numeric = /^(\d{1,2})([/.-])(\d{1,2})\2(\d{4})$/.exec(said);
  if (numeric) {
    const [a, b, year] = [+numeric[1]!, +numeric[3]!, +numeric[4]!];
    if (a > 12 && b <= 12) return isoDate({ year, month: b, day: a });
    if (b > 12 && a <= 12) return isoDate({ year, month: a, day: b });
    if (a === b) return isoDate({ year, month: a, day: a });
    return undefined;
  }
  const monthDay = MONTH_DAY.exec(said);
  const dayMonth = monthDay ? undefined : DAY_MONTH.exec(said);
  const [monthName, day, year] = monthDay
    ? [monthDay[1]!, +monthDay[2]!, monthDay[3]]
    : dayMonth
      ? [dayMonth[2]!, +dayMonth[1]!, dayMonth[3]]
      : [];
  if (!monthName || !day) return undefined;
  const month = monthNumber(monthName);
  return year ? isoDate({ year: +year, month, day }) : nearest(today, month, day);
}

/** wink-nlp's DATE entities and our own, located in the text; the longest wins an overlap. */
function dates(text: string, doc: Document, today: CalendarDate): Span[] {
  const found: { start: number; end: number }[] = [];
  for (const pattern of [NUMERIC_DATE, WRITTEN_DATE]) {
    for (const match of text.matchAll(pattern)) {
      found.push({ start: match.index, end: match.index + match[0].length });
    }
  }
  const detail = winkIts().detail as ItsFunction<{ value: string; type: string }>;
  const details = doc.entities().out(detail) as { value: string; type: string }[];
  let cursor = 0;
  for (const { value, type } of details) {
    // wink-nlp gives entities in text order, with the text's own spacing.
    const start = text.indexOf(value, cursor);
    if (start < 0) continue;
    cursor = start + value.length;
    if (type === 'DATE') found.push({ start, end: cursor });
  }
  found.sort((a, b) => a.start - b.start || b.end - a.end);
  const out: Span[] = [];
  for (const { start, end } of found) {
    if (out.length > 0 && start < out.at(-1)!.end) continue;
    const written = text.slice(start, end);
    out.push({ kind: 'date', value: resolveDate(written, today) ?? written, start, end });
  }
  return out;
}

// ---------------------------------------------------------------- all together

/**
 * The entities of a message (see the module's comment), in text order. `doc` is the message as
 * `winkNlp()` (classifier.ts) read it (the provider reads it once for intents, entities and sentiment).
 */
export function extractEntities(
  text: string,
  doc: Document,
  compiled: CompiledEntities,
  options: ExtractOptions,
): NluEntity[] {
  const today = calendarDate(options.now, options.timeZone ?? 'UTC');
  const builtins: Span[] = [];
  const overlaps = (span: Span) => builtins.some(b => span.start < b.end && b.start < span.end);
  for (const spans of [
    emails(text),
    urls(text),
    dates(text, doc, today),
    phones(text),
    numbers(text),
  ]) {
    for (const span of spans) if (!overlaps(span)) builtins.push(span);
  }
  const all: NluEntity[] = [
    ...builtins.map(({ kind, value, start, end }) => ({
      kind,
      value,
      text: text.slice(start, end),
      start,
      end,
    })),
    ...listEntities(text, compiled),
    ...patternEntities(text, compiled),
  ];
  return all.sort((a, b) => a.start! - b.start! || b.end! - a.end! || (a.kind < b.kind ? -1 : 1));
}

/** Whether `timeZone` is an IANA zone this runtime knows (settings are checked before use). */
export function isTimeZone(timeZone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone });
    return true;
  } catch {
    return false;
  }
}

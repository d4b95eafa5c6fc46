/**
 * SMS keywords for the opt-out ledger: a message that is only a keyword opts the sender out,
 * back in, or asks for help. Matching is on the whole message, trimmed, case-insensitive, with
 * trailing punctuation ignored, as carriers and aggregators do: "stop." opts out, "please stop
 * texting me" does not. Tenants configure their own keywords per language; these are the
 * defaults.
 */
export type KeywordAction = 'opt-out' | 'opt-in' | 'help';

export type KeywordTable = Readonly<Record<KeywordAction, readonly string[]>>;

export const DEFAULT_KEYWORDS: Readonly<Record<string, KeywordTable>> = {
  en: {
    'opt-out': ['STOP', 'STOPALL', 'UNSUBSCRIBE', 'CANCEL', 'END', 'QUIT', 'OPTOUT'],
    'opt-in': ['START', 'UNSTOP', 'YES', 'SUBSCRIBE'],
    help: ['HELP', 'INFO'],
  },
  fr: { 'opt-out': ['ARRET', 'ARRÊT', 'STOP'], 'opt-in': ['START'], help: ['AIDE'] },
  es: { 'opt-out': ['BAJA', 'ALTO', 'PARAR'], 'opt-in': ['ALTA', 'INICIO'], help: ['AYUDA'] },
  de: { 'opt-out': ['STOPP', 'ABMELDEN'], 'opt-in': ['START', 'ANMELDEN'], help: ['HILFE'] },
};

const normalise = (text: string) =>
  text
    .normalize('NFC')
    .trim()
    .replace(/[\s.!?,;:]+$/u, '')
    .replace(/\s+/gu, ' ')
    .toLocaleUpperCase('en');

/** The action a message asks for, across the given languages' tables, if it is a keyword. */
export function keywordAction(
  text: string,
  tables: readonly KeywordTable[] = Object.values(DEFAULT_KEYWORDS),
): KeywordAction | undefined {
  const word = normalise(text);
  if (word.length === 0 || word.length > 32) return undefined;
  for (const table of tables) {
    for (const action of ['opt-out', 'opt-in', 'help'] as const) {
      if (table[action].some(keyword => normalise(keyword) === word)) return action;
    }
  }
  return undefined;
}

export const DEFAULT_HELP_TEXT =
  'Reply STOP to stop receiving messages from this number, START to receive them again.';

/**
 * The keyword tables of a tenant: the defaults, with the languages the tenant configured
 * (service `SmsKeywords`) replacing theirs.
 */
export function tenantKeywordTables(
  configured:
    Readonly<Record<string, { optOut?: string[]; optIn?: string[]; help?: string[] }>> | undefined,
): KeywordTable[] {
  const tables: Record<string, KeywordTable> = { ...DEFAULT_KEYWORDS };
  for (const [language, words] of Object.entries(configured ?? {})) {
    tables[language] = {
      'opt-out': words.optOut ?? [],
      'opt-in': words.optIn ?? [],
      help: words.help ?? [],
    };
  }
  return Object.values(tables);
}

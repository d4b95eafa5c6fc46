import { builtinNlu } from './builtin/index.js';
import { dialogflowCx } from './dialogflow-cx.js';
import { dialogflowEs } from './dialogflow-es.js';
import { lexV2 } from './lex-v2.js';
import type { NluProvider } from './provider.js';
import { rasa } from './rasa.js';

/** The NLU providers a tenant may choose, by the name its settings give (`provider`). */
export const NLU_PROVIDERS = {
  builtin: builtinNlu,
  'dialogflow-es': dialogflowEs,
  'dialogflow-cx': dialogflowCx,
  'lex-v2': lexV2,
  rasa,
} as const satisfies Record<string, NluProvider>;

export type NluProviderName = keyof typeof NLU_PROVIDERS;
export const NLU_PROVIDER_NAMES = Object.keys(NLU_PROVIDERS) as NluProviderName[];

export const isNluProviderName = (name: string): name is NluProviderName =>
  Object.hasOwn(NLU_PROVIDERS, name);

import { createHash } from 'node:crypto';
import { z } from 'zod';
import { googleApiRequest, serviceAccountOf, tokenUrlOf } from './dialogflow-auth.js';
import {
  nluBadAnswer,
  nluJson,
  nluNotConfigured,
  type NluEntity,
  type NluProvider,
  type NluSentiment,
  type NluSettings,
} from './provider.js';

/**
 * Dialogflow ES (API v2), `projects.agent.sessions.detectIntent`:
 * `POST {endpoint}/v2/projects/{projectId}/agent/sessions/{sessionId}:detectIntent`, or
 * `…/agent/environments/{environment}/users/-/sessions/{sessionId}:detectIntent` for a
 * published environment, with `projects/{p}/locations/{location}/agent/…` and the
 * `{location}-dialogflow.googleapis.com` host for a regional agent. The body is
 * `{queryInput: {text: {text, languageCode}}}` (plus `queryParams.sentimentAnalysisRequestConfig`
 * when `data.sentiment` is true); the token is the service account's (dialogflow-auth.ts).
 *
 * Settings: `data.projectId`; optional `data.location`, `data.environment`, `data.languageCode`
 * (else the turn's), `data.sentiment`, `data.handoffIntents` (intent display names),
 * `data.endpoint` and `data.tokenUrl` (tests); `secret` the service account key.
 *
 * The answer's `queryResult`: `intent.displayName` and `intentDetectionConfidence` are the intent,
 * none when `intent.isFallback` (a fallback intent) or no intent matched; `parameters` are the
 * entities, one per value (kind = parameter name, the words said from the output contexts'
 * `<name>.original`); the default platform's `fulfillmentMessages[].text.text[]` are the replies,
 * else `fulfillmentText`; `sentimentAnalysisResult.queryTextSentiment.score` the sentiment. ES
 * has no handoff signal of its own: a matched intent named in `data.handoffIntents` is one.
 *
 * Shapes follow the v2 REST reference (google-api-python-client
 * docs/dyn/dialogflow_v2.projects.agent.sessions.html). What ES and CX share (session ids,
 * parameters, sentiment, settings) is exported from here for dialogflow-cx.ts.
 */

const PROVIDER = 'dialogflow-es';

/** Both editions refuse query text over 256 characters (`queryInput.text.text`). */
export const DIALOGFLOW_TEXT_LIMIT = 256;

/** A non-empty string setting of `data`. */
export function stringSetting(data: NluSettings['data'], name: string): string | undefined {
  const value = data[name];
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
}

/** `data.handoffIntents`: intent names that ask for a person; none unless set. */
export function handoffIntentsOf(data: NluSettings['data'], provider: string): ReadonlySet<string> {
  const value = data.handoffIntents;
  if (value === undefined) return new Set();
  if (!Array.isArray(value) || !value.every(name => typeof name === 'string')) {
    throw nluNotConfigured(`${provider}: data.handoffIntents must be a list of intent names`);
  }
  return new Set(value);
}

/** A 2xx answer read with `schema`; anything else is a bad answer naming the first problem. */
export function parseAnswer<T extends z.ZodTypeAny>(
  schema: T,
  body: string,
  provider: string,
): z.infer<T> {
  const parsed = schema.safeParse(nluJson(body, provider));
  if (parsed.success) return parsed.data as z.infer<T>;
  const issue = parsed.error.issues[0];
  throw nluBadAnswer(
    `${provider} answered 2xx with an unexpected body (${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'})`,
  );
}

/**
 * The Dialogflow session id of a conversation: its id when it is at most 36 characters of
 * `[A-Za-z0-9_-]` (both editions' limit; a UUID fits), else the first 36 hex digits of its SHA-256,
 * so every conversation keeps one session.
 */
export function dialogflowSessionId(id: string): string {
  return /^[A-Za-z0-9_-]{1,36}$/.test(id)
    ? id
    : createHash('sha256').update(id).digest('hex').slice(0, 36);
}

/** The API host of a location: `global` (or none) is `dialogflow.googleapis.com`. */
export function dialogflowEndpoint(data: NluSettings['data'], location: string | undefined) {
  const override = stringSetting(data, 'endpoint');
  if (override) return override.replace(/\/+$/, '');
  return !location || location === 'global'
    ? 'https://dialogflow.googleapis.com'
    : `https://${location}-dialogflow.googleapis.com`;
}

/** `data.location` when set, checked as a host label (it becomes part of the API host). */
export function locationOf(data: NluSettings['data'], provider: string): string | undefined {
  const location = stringSetting(data, 'location');
  if (location !== undefined && !/^[a-z0-9-]+$/.test(location)) {
    throw nluNotConfigured(`${provider}: data.location ${location} is not a Dialogflow location`);
  }
  return location;
}

/** The first `max` characters (code points, never half a surrogate pair). */
export function clip(text: string, max: number): string {
  const chars = Array.from(text);
  return chars.length <= max ? text : chars.slice(0, max).join('');
}

/** Scores from -0.25 to 0.25 are neutral (the hub's cut; Google gives scores, not labels). */
const NEUTRAL_BAND = 0.25;

export function sentimentOf(score: number): NluSentiment {
  const clamped = Math.max(-1, Math.min(1, score));
  return {
    score: clamped,
    label: clamped >= NEUTRAL_BAND ? 'positive' : clamped <= -NEUTRAL_BAND ? 'negative' : 'neutral',
  };
}

/**
 * A parameter's values as text: strings and numbers as they are, lists one per element, a
 * composite (an object: a date period, an amount with its currency) as its JSON; empty strings
 * and nulls (unfilled parameters) are no value.
 */
function valuesOf(value: unknown): string[] {
  if (value === null || value === undefined || value === '') return [];
  if (typeof value === 'string') return [value];
  if (typeof value === 'number' || typeof value === 'boolean') return [String(value)];
  if (Array.isArray(value)) return value.flatMap(valuesOf);
  if (typeof value === 'object') {
    return Object.keys(value).length > 0 ? [JSON.stringify(value)] : [];
  }
  return [];
}

/** Where `fragment` is in `message`, ignoring case, when it is. */
function locate(message: string, fragment: string): { start: number; end: number } | undefined {
  const lower = message.toLowerCase();
  // Lower-casing that changes lengths (rare letters) would shift offsets: no offsets then.
  if (fragment === '' || lower.length !== message.length) return undefined;
  const start = lower.indexOf(fragment.toLowerCase());
  return start < 0 ? undefined : { start, end: start + fragment.length };
}

/**
 * Entities from a Dialogflow `parameters` Struct: one per value, kind = parameter name; `said`
 * holds the words said per parameter when the answer has them (ES `<name>.original`). The text
 * and offsets are the message's own words when they are found in it.
 */
export function parameterEntities(
  parameters: Readonly<Record<string, unknown>> | undefined,
  message: string,
  said: ReadonlyMap<string, unknown> = new Map(),
): NluEntity[] {
  const entities: NluEntity[] = [];
  for (const [kind, value] of Object.entries(parameters ?? {})) {
    if (kind.endsWith('.original')) continue;
    const words = valuesOf(said.get(kind));
    valuesOf(value).forEach((normalised, i) => {
      const text = words[i] ?? normalised;
      const at = locate(message, text);
      entities.push(
        at
          ? { kind, value: normalised, text: message.slice(at.start, at.end), ...at }
          : { kind, value: normalised, text },
      );
    });
  }
  return entities;
}

const EsAnswer = z.object({
  queryResult: z.object({
    intent: z
      .object({ displayName: z.string().optional(), isFallback: z.boolean().optional() })
      .optional(),
    intentDetectionConfidence: z.number().optional(),
    parameters: z.record(z.unknown()).optional(),
    fulfillmentText: z.string().optional(),
    fulfillmentMessages: z
      .array(
        z.object({
          platform: z.string().optional(),
          text: z.object({ text: z.array(z.string()).optional() }).optional(),
        }),
      )
      .optional(),
    outputContexts: z.array(z.object({ parameters: z.record(z.unknown()).optional() })).optional(),
    sentimentAnalysisResult: z
      .object({ queryTextSentiment: z.object({ score: z.number().optional() }).optional() })
      .optional(),
  }),
});
type EsQueryResult = z.infer<typeof EsAnswer>['queryResult'];

/** The `<name>.original` values of the output contexts: the words the parameters came from. */
function originalsOf(result: EsQueryResult): Map<string, unknown> {
  const said = new Map<string, unknown>();
  for (const context of result.outputContexts ?? []) {
    for (const [name, value] of Object.entries(context.parameters ?? {})) {
      const kind = name.endsWith('.original') ? name.slice(0, -'.original'.length) : undefined;
      if (kind && !said.has(kind)) said.set(kind, value);
    }
  }
  return said;
}

/** The default platform's text messages (others repeat them for Slack, Telephony…), else `fulfillmentText`. */
function repliesOf(result: EsQueryResult): string[] {
  const replies = (result.fulfillmentMessages ?? [])
    .filter(message => !message.platform || message.platform === 'PLATFORM_UNSPECIFIED')
    .flatMap(message => message.text?.text ?? [])
    .filter(text => text.trim() !== '');
  if (replies.length > 0) return replies;
  return result.fulfillmentText?.trim() ? [result.fulfillmentText] : [];
}

function detectIntentUrl(settings: NluSettings, sessionId: string): string {
  const projectId = stringSetting(settings.data, 'projectId');
  if (!projectId) throw nluNotConfigured(`${PROVIDER}: data.projectId is missing`);
  const location = locationOf(settings.data, PROVIDER);
  const environment = stringSetting(settings.data, 'environment');
  const agent = location
    ? `projects/${encodeURIComponent(projectId)}/locations/${location}/agent`
    : `projects/${encodeURIComponent(projectId)}/agent`;
  const session = environment
    ? `${agent}/environments/${encodeURIComponent(environment)}/users/-/sessions/${sessionId}`
    : `${agent}/sessions/${sessionId}`;
  return `${dialogflowEndpoint(settings.data, location)}/v2/${session}:detectIntent`;
}

export const dialogflowEs: NluProvider = async (request, settings, ctx) => {
  const url = detectIntentUrl(settings, dialogflowSessionId(request.sessionId));
  const handoffIntents = handoffIntentsOf(settings.data, PROVIDER);
  const key = serviceAccountOf(settings.secret, PROVIDER);
  const body = {
    queryInput: {
      text: {
        text: clip(request.text, DIALOGFLOW_TEXT_LIMIT),
        languageCode: stringSetting(settings.data, 'languageCode') ?? request.languageCode,
      },
    },
    ...(settings.data.sentiment === true
      ? { queryParams: { sentimentAnalysisRequestConfig: { analyzeQueryTextSentiment: true } } }
      : {}),
  };
  const response = await googleApiRequest(
    ctx,
    PROVIDER,
    { key, tokenUrl: tokenUrlOf(settings, key) },
    url,
    body,
  );
  const result = parseAnswer(EsAnswer, response.body, PROVIDER).queryResult;
  const name = result.intent?.isFallback ? undefined : result.intent?.displayName;
  const sentiment = result.sentimentAnalysisResult?.queryTextSentiment;
  return {
    // proto3 JSON leaves a zero out: a matched intent without a score is taken as certain.
    intent: name ? { name, confidence: result.intentDetectionConfidence ?? 1 } : undefined,
    entities: parameterEntities(result.parameters, request.text, originalsOf(result)),
    sentiment: sentiment ? sentimentOf(sentiment.score ?? 0) : undefined,
    replies: repliesOf(result),
    handoff:
      name && handoffIntents.has(name)
        ? { detail: `Dialogflow ES matched ${name}, a handoff intent (data.handoffIntents)` }
        : undefined,
    provider: PROVIDER,
  };
};

import { createHash } from 'node:crypto';
import { Hash } from '@smithy/hash-node';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { z } from 'zod';
import {
  nluBadAnswer,
  nluJson,
  nluNotConfigured,
  nluRequest,
  type NluEntity,
  type NluProvider,
  type NluResult,
  type NluSentiment,
  type NluSettings,
} from './provider.js';

/**
 * Amazon Lex V2, runtime `RecognizeText`:
 * `POST https://runtime-v2-lex.{region}.amazonaws.com/bots/{botId}/botAliases/{botAliasId}/botLocales/{localeId}/sessions/{sessionId}/text`
 * with `{text}` (Lex takes up to 1,024 characters), signed with AWS Signature Version 4 (service
 * `lex`) by `@smithy/signature-v4`, as the AWS SDK signs it: the path's segments URI-encoded
 * (and encoded again in the canonical request), `host`, `content-type`, `x-amz-date`,
 * `x-amz-content-sha256` and, for temporary credentials, `x-amz-security-token` signed.
 *
 * Settings: `data.region`, `data.botId`, `data.botAliasId`, `data.localeId` (else the turn's
 * language when it names a region, `en-US` → `en_US`); optional `data.handoffIntents` and
 * `data.endpoint` (tests); `secret.accessKeyId`, `secret.secretAccessKey`, optional
 * `secret.sessionToken`.
 *
 * The answer: the intent is the one Lex acts on (`sessionState.intent.name`, else the top
 * interpretation's), its score the `nluConfidence.score` of its interpretation (taken as certain
 * when Lex gives none); the built-in fallback (`FallbackIntent`, whose signature is
 * `AMAZON.FallbackIntent`) is no intent. Its interpretation's `slots` are the entities (kind =
 * slot name, `sub.slot` for a composite's sub-slots, one per value of a list slot; value =
 * `interpretedValue`, text = `originalValue`). `sentimentResponse` (when the bot analyses
 * sentiment) is the sentiment: score = positive − negative, label from `sentiment` (`MIXED` is
 * neutral). `messages[]` are the replies: `PlainText` as it is, `SSML` without its tags, an
 * `ImageResponseCard`'s title, subtitle and button texts; `CustomPayload` is not text.
 *
 * Handoff, exactly: when the intent Lex acts on is `FallbackIntent` or `AMAZON.FallbackIntent`
 * (whatever the dialog action: `Close` means the fallback ended the conversation, `ElicitIntent`
 * that it asks again), or when it is named in `data.handoffIntents` (whatever its state).
 *
 * Shapes follow the Lex V2 API reference (`API_runtime_RecognizeText`, and the `Slot`, `Value`,
 * `Interpretation`, `SentimentResponse` and `Message` types of the runtime SDKs).
 */

const PROVIDER = 'lex-v2';

/** RecognizeText's `text` is at most 1,024 characters. */
const TEXT_LIMIT = 1024;

const FALLBACK_INTENTS = new Set(['FallbackIntent', 'AMAZON.FallbackIntent']);

/** A non-empty string of `record`. */
function stringOf(record: Readonly<Record<string, unknown>>, name: string): string | undefined {
  const value = record[name];
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
}

/**
 * The Lex session id of a conversation (`[0-9a-zA-Z._:-]`, 2 to 100 characters): its id when it
 * fits (and is not dots only), else the hex SHA-256 of it, so every conversation keeps one
 * session.
 */
export function lexSessionId(id: string): string {
  // An id of dots only would be a `.` or `..` path segment, which URLs resolve away.
  return /^[0-9a-zA-Z._:-]{2,100}$/.test(id) && /[0-9a-zA-Z]/.test(id)
    ? id
    : createHash('sha256').update(id).digest('hex');
}

/** The bot locale: `data.localeId`, else the turn's language when it names a region (`en-US`). */
function localeOf(data: NluSettings['data'], languageCode: string): string {
  const locale =
    stringOf(data, 'localeId') ??
    (/^[a-z]{2}[-_][A-Z]{2}$/.test(languageCode) ? languageCode.replace('-', '_') : undefined);
  if (!locale) {
    throw nluNotConfigured(
      `${PROVIDER}: data.localeId is missing and the language ${languageCode} names no region`,
    );
  }
  if (!/^[a-zA-Z_-]+$/.test(locale)) {
    throw nluNotConfigured(`${PROVIDER}: data.localeId ${locale} is not a Lex locale (en_US)`);
  }
  return locale;
}

interface LexTarget {
  url: URL;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  handoffIntents: ReadonlySet<string>;
}

function targetOf(settings: NluSettings, sessionId: string, languageCode: string): LexTarget {
  const { data, secret } = settings;
  const region = stringOf(data, 'region');
  const botId = stringOf(data, 'botId');
  const botAliasId = stringOf(data, 'botAliasId');
  if (!region || !botId || !botAliasId) {
    throw nluNotConfigured(`${PROVIDER}: data.region, data.botId and data.botAliasId are required`);
  }
  if (!/^[a-z]{2}(-[a-z]+)+-\d+$/.test(region)) {
    throw nluNotConfigured(`${PROVIDER}: data.region ${region} is not an AWS region`);
  }
  // Lex's own patterns (ids of letters and digits): nothing else reaches the URL's path.
  if (!/^[0-9a-zA-Z]+$/.test(botId) || !/^[0-9a-zA-Z]+$/.test(botAliasId)) {
    throw nluNotConfigured(
      `${PROVIDER}: data.botId and data.botAliasId are Lex ids (letters, digits)`,
    );
  }
  const accessKeyId = stringOf(secret, 'accessKeyId');
  const secretAccessKey = stringOf(secret, 'secretAccessKey');
  if (!accessKeyId || !secretAccessKey) {
    throw nluNotConfigured(
      `${PROVIDER}: secret.accessKeyId and secret.secretAccessKey are required`,
    );
  }
  const sessionToken = stringOf(secret, 'sessionToken');
  const handoff = data.handoffIntents ?? [];
  if (!Array.isArray(handoff) || !handoff.every(name => typeof name === 'string')) {
    throw nluNotConfigured(`${PROVIDER}: data.handoffIntents must be a list of intent names`);
  }
  const base = (
    stringOf(data, 'endpoint') ?? `https://runtime-v2-lex.${region}.amazonaws.com`
  ).replace(/\/+$/, '');
  const path = [
    'bots',
    botId,
    'botAliases',
    botAliasId,
    'botLocales',
    localeOf(data, languageCode),
    'sessions',
    lexSessionId(sessionId),
    'text',
  ].map(encodeURIComponent);
  let url: URL;
  try {
    url = new URL(`${base}/${path.join('/')}`);
  } catch {
    throw nluNotConfigured(`${PROVIDER}: data.endpoint ${base} is not a URL`);
  }
  return {
    url,
    region,
    credentials: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) },
    handoffIntents: new Set(handoff),
  };
}

/** The request's headers, SigV4-signed for `lex` in the target's region. */
async function signedHeaders(target: LexTarget, body: string): Promise<Record<string, string>> {
  const signer = new SignatureV4({
    service: 'lex',
    region: target.region,
    credentials: target.credentials,
    sha256: Hash.bind(null, 'sha256'),
  });
  const { url } = target;
  const signed = await signer.sign(
    new HttpRequest({
      method: 'POST',
      protocol: url.protocol,
      hostname: url.hostname,
      ...(url.port ? { port: Number(url.port) } : {}),
      path: url.pathname,
      headers: { host: url.host, 'content-type': 'application/json' },
      body,
    }),
  );
  return signed.headers;
}

type Slot = {
  value?: { originalValue?: string; interpretedValue?: string } | undefined;
  values?: (Slot | null)[] | undefined;
  subSlots?: Record<string, Slot | null> | undefined;
};
const SlotSchema: z.ZodType<Slot> = z.lazy(() =>
  z.object({
    value: z
      .object({ originalValue: z.string().optional(), interpretedValue: z.string().optional() })
      .optional(),
    values: z.array(SlotSchema.nullable()).optional(),
    subSlots: z.record(SlotSchema.nullable()).optional(),
  }),
);

const LexAnswer = z.object({
  messages: z
    .array(
      z.object({
        content: z.string().optional(),
        contentType: z.string().optional(),
        imageResponseCard: z
          .object({
            title: z.string().optional(),
            subtitle: z.string().optional(),
            buttons: z.array(z.object({ text: z.string().optional() })).optional(),
          })
          .optional(),
      }),
    )
    .optional(),
  sessionState: z
    .object({
      dialogAction: z.object({ type: z.string().optional() }).optional(),
      intent: z.object({ name: z.string().optional() }).optional(),
    })
    .optional(),
  interpretations: z
    .array(
      z.object({
        intent: z
          .object({
            name: z.string().optional(),
            slots: z.record(SlotSchema.nullable()).optional(),
          })
          .optional(),
        nluConfidence: z.object({ score: z.number().optional() }).optional(),
        sentimentResponse: z
          .object({
            sentiment: z.string().optional(),
            sentimentScore: z
              .object({ positive: z.number().optional(), negative: z.number().optional() })
              .optional(),
          })
          .optional(),
      }),
    )
    .optional(),
});
type LexAnswer = z.infer<typeof LexAnswer>;

function parseAnswer(body: string): LexAnswer {
  const parsed = LexAnswer.safeParse(nluJson(body, PROVIDER));
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw nluBadAnswer(
    `${PROVIDER} answered 2xx with an unexpected body (${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'})`,
  );
}

/** Where `fragment` is in `message`, ignoring case, when it is (and lower-casing keeps lengths). */
function locate(message: string, fragment: string): { start: number; end: number } | undefined {
  const lower = message.toLowerCase();
  if (fragment === '' || lower.length !== message.length) return undefined;
  const start = lower.indexOf(fragment.toLowerCase());
  return start < 0 ? undefined : { start, end: start + fragment.length };
}

/** A slot's values as entities: list slots one per value, composite slots per sub-slot. */
function slotEntities(kind: string, slot: Slot | null, message: string): NluEntity[] {
  if (!slot) return [];
  const nested = [
    ...(slot.values ?? []).flatMap(value => slotEntities(kind, value, message)),
    ...Object.entries(slot.subSlots ?? {}).flatMap(([name, sub]) =>
      slotEntities(`${kind}.${name}`, sub, message),
    ),
  ];
  if (nested.length > 0 || !slot.value?.interpretedValue) return nested;
  const value = slot.value.interpretedValue;
  const said = slot.value.originalValue ?? value;
  const at = locate(message, said);
  return [
    at
      ? { kind, value, text: message.slice(at.start, at.end), ...at }
      : { kind, value, text: said },
  ];
}

function sentimentOf(response: {
  sentiment?: string | undefined;
  sentimentScore?: { positive?: number | undefined; negative?: number | undefined } | undefined;
}): NluSentiment {
  const score = (response.sentimentScore?.positive ?? 0) - (response.sentimentScore?.negative ?? 0);
  return {
    score: Math.max(-1, Math.min(1, score)),
    label:
      response.sentiment === 'POSITIVE'
        ? 'positive'
        : response.sentiment === 'NEGATIVE'
          ? 'negative'
          : 'neutral',
  };
}

/** A message's text: `PlainText` as it is, `SSML` untagged, a card's lines; a custom payload none. */
function textsOf(message: NonNullable<LexAnswer['messages']>[number]): (string | undefined)[] {
  if (message.contentType === 'PlainText') return [message.content];
  if (message.contentType === 'SSML') return [message.content?.replace(/<[^>]*>/g, '')];
  if (message.contentType === 'ImageResponseCard') {
    const card = message.imageResponseCard;
    return [card?.title, card?.subtitle, ...(card?.buttons ?? []).map(button => button.text)];
  }
  return [];
}

function repliesOf(answer: LexAnswer): string[] {
  return (answer.messages ?? [])
    .flatMap(textsOf)
    .map(text => text?.trim() ?? '')
    .filter(text => text !== '');
}

function resultOf(answer: LexAnswer, text: string, handoffIntents: ReadonlySet<string>): NluResult {
  const interpretations = answer.interpretations ?? [];
  const name = answer.sessionState?.intent?.name ?? interpretations[0]?.intent?.name;
  const chosen = interpretations.find(i => i.intent?.name === name) ?? interpretations[0];
  const fallback = name !== undefined && FALLBACK_INTENTS.has(name);
  const sentiment = interpretations.find(i => i.sentimentResponse)?.sentimentResponse;
  const closed = answer.sessionState?.dialogAction?.type === 'Close';
  return {
    intent: name && !fallback ? { name, confidence: chosen?.nluConfidence?.score ?? 1 } : undefined,
    entities: Object.entries(chosen?.intent?.slots ?? {}).flatMap(([kind, slot]) =>
      slotEntities(kind, slot, text),
    ),
    sentiment: sentiment ? sentimentOf(sentiment) : undefined,
    replies: repliesOf(answer),
    handoff: fallback
      ? {
          detail: closed
            ? `Lex closed the conversation with its fallback intent (${name})`
            : `Lex did not understand: its fallback intent (${name}) matched`,
        }
      : name && handoffIntents.has(name)
        ? { detail: `Lex matched ${name}, a handoff intent (data.handoffIntents)` }
        : undefined,
    provider: PROVIDER,
  };
}

export const lexV2: NluProvider = async (request, settings, ctx) => {
  const target = targetOf(settings, request.sessionId, request.languageCode);
  const body = JSON.stringify({ text: Array.from(request.text).slice(0, TEXT_LIMIT).join('') });
  const response = await nluRequest(ctx, PROVIDER, target.url.toString(), {
    method: 'POST',
    headers: { ...(await signedHeaders(target, body)), accept: 'application/json' },
    body,
  });
  return resultOf(parseAnswer(response.body), request.text, target.handoffIntents);
};

import { z } from 'zod';
import {
  nluBadAnswer,
  nluJson,
  nluNotConfigured,
  nluRequest,
  type NluContext,
  type NluEntity,
  type NluProvider,
  type NluSettings,
} from './provider.js';

/**
 * Rasa (Open Source / Pro), over two of its HTTP endpoints, at the settings' `url` (the server,
 * e.g. `http://rasa:5005`):
 *
 * - the HTTP API's `POST {url}/model/parse` `{text}` → `{intent: {name, confidence},
 *   entities: [{entity, value, start, end}]}` (understanding only; it needs `--enable-api`), unless
 *   `data.parse` is false;
 * - then the REST input channel's `POST {url}/webhooks/rest/webhook` `{sender, message}` →
 *   `[{recipient_id, text?, image?, buttons?: [{title, payload}], custom?}]`: the bot's turn. It
 *   runs the dialogue (it moves the conversation on), so it goes second: a parse that fails and is
 *   retried never sends the message twice.
 *
 * Auth: `secret.token` is Rasa's `--auth-token`, sent as the `token` query parameter;
 * `secret.jwt` a JWT for `--jwt-secret`, sent as `Authorization: Bearer` (its payload carries
 * `user.role` as Rasa wants it; the hub sends it as it is). Rasa checks them on its HTTP API
 * only (the REST channel has no auth of its own); the hub sends them to both, for a proxy in front
 * that checks the whole server.
 *
 * The result: the parse's intent (none when it is empty or `nlu_fallback`, the
 * FallbackClassifier's); its entities (kind = `entity`, value = `value`, text = the message's
 * words at `start`..`end`); the webhook's messages as replies: `text` (followed by its buttons'
 * titles, one per line, so a channel without buttons still offers them), an `image`'s URL;
 * `custom` payloads are not text. Rasa has no handoff signal of its own: a parsed intent named
 * in `data.handoffIntents` (none unless set) is one. Rasa gives no sentiment.
 *
 * Shapes follow Rasa's HTTP API spec and `rasa/core/channels/rest.py` (RestInput,
 * CollectingOutputChannel) in RasaHQ/rasa.
 */

const PROVIDER = 'rasa';

/** What the FallbackClassifier predicts below its threshold: Rasa did not understand. */
const NLU_FALLBACK = 'nlu_fallback';

const ParseAnswer = z.object({
  intent: z
    .object({ name: z.string().nullable().optional(), confidence: z.number().optional() })
    .nullable()
    .optional(),
  entities: z
    .array(
      z.object({
        entity: z.string(),
        value: z.unknown(),
        start: z.number().int().optional(),
        end: z.number().int().optional(),
      }),
    )
    .optional(),
});

const WebhookAnswer = z.array(
  z.object({
    text: z.string().optional(),
    image: z.string().optional(),
    buttons: z.array(z.object({ title: z.string().optional() })).optional(),
  }),
);

function parseAnswer<T extends z.ZodTypeAny>(schema: T, body: string, what: string): z.infer<T> {
  const parsed = schema.safeParse(nluJson(body, what));
  if (parsed.success) return parsed.data as z.infer<T>;
  const issue = parsed.error.issues[0];
  throw nluBadAnswer(
    `${what} answered 2xx with an unexpected body (${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'})`,
  );
}

interface RasaTarget {
  url(path: string): string;
  headers: Record<string, string>;
  parse: boolean;
  handoffIntents: ReadonlySet<string>;
}

function targetOf(settings: NluSettings): RasaTarget {
  const { data, secret } = settings;
  if (!settings.url) throw nluNotConfigured(`${PROVIDER}: the Rasa server's url is missing`);
  let base: URL;
  try {
    base = new URL(settings.url);
  } catch {
    throw nluNotConfigured(`${PROVIDER}: ${settings.url} is not a URL`);
  }
  const token = typeof secret.token === 'string' && secret.token !== '' ? secret.token : undefined;
  const jwt = typeof secret.jwt === 'string' && secret.jwt !== '' ? secret.jwt : undefined;
  const handoff = data.handoffIntents ?? [];
  if (!Array.isArray(handoff) || !handoff.every(name => typeof name === 'string')) {
    throw nluNotConfigured(`${PROVIDER}: data.handoffIntents must be a list of intent names`);
  }
  const root = base.pathname.replace(/\/+$/, '');
  return {
    url(path) {
      const url = new URL(base);
      url.pathname = `${root}${path}`;
      if (token) url.searchParams.set('token', token);
      return url.toString();
    },
    headers: {
      'Content-Type': 'application/json',
      Accept: 'application/json',
      ...(jwt ? { Authorization: `Bearer ${jwt}` } : {}),
    },
    parse: data.parse !== false,
    handoffIntents: new Set(handoff),
  };
}

async function post(ctx: NluContext, target: RasaTarget, path: string, body: unknown) {
  return nluRequest(ctx, `${PROVIDER} ${path}`, target.url(path), {
    method: 'POST',
    headers: target.headers,
    body: JSON.stringify(body),
  });
}

/** Rasa's entity values are strings, numbers or (Duckling's) objects. */
const valueText = (value: unknown) =>
  typeof value === 'string' ? value : value === undefined ? '' : JSON.stringify(value);

function entityOf(
  entity: { entity: string; value?: unknown; start?: number | undefined; end?: number | undefined },
  message: string,
): NluEntity {
  const value = valueText(entity.value);
  const { start, end } = entity;
  return start !== undefined &&
    end !== undefined &&
    0 <= start &&
    start < end &&
    end <= message.length
    ? { kind: entity.entity, value, text: message.slice(start, end), start, end }
    : { kind: entity.entity, value, text: value };
}

function repliesOf(messages: z.infer<typeof WebhookAnswer>): string[] {
  return messages.flatMap(message => {
    const buttons = (message.buttons ?? []).map(button => button.title ?? '').filter(t => t !== '');
    const text = [message.text ?? '', ...buttons].filter(line => line.trim() !== '').join('\n');
    return [text, message.image ?? ''].filter(reply => reply.trim() !== '');
  });
}

export const rasa: NluProvider = async (request, settings, ctx) => {
  const target = targetOf(settings);
  const parsed = target.parse
    ? parseAnswer(
        ParseAnswer,
        (await post(ctx, target, '/model/parse', { text: request.text })).body,
        `${PROVIDER} /model/parse`,
      )
    : undefined;
  const turn = await post(ctx, target, '/webhooks/rest/webhook', {
    sender: request.sessionId,
    message: request.text,
  });
  const replies = repliesOf(
    parseAnswer(WebhookAnswer, turn.body, `${PROVIDER} /webhooks/rest/webhook`),
  );
  const name = parsed?.intent?.name;
  const understood = name && name !== NLU_FALLBACK ? name : undefined;
  return {
    // Rasa always scores its intents; one without a score is taken as certain.
    intent: understood
      ? { name: understood, confidence: parsed?.intent?.confidence ?? 1 }
      : undefined,
    entities: (parsed?.entities ?? []).map(entity => entityOf(entity, request.text)),
    replies,
    handoff:
      understood && target.handoffIntents.has(understood)
        ? { detail: `Rasa parsed ${understood}, a handoff intent (data.handoffIntents)` }
        : undefined,
    provider: PROVIDER,
  };
};

import type { IncomingMessage } from 'node:http';
import type { Request } from 'express';
import { z } from 'zod';
import { AppError } from '../../lib/errors.js';
import { tenantOf } from '../auth/principal.js';
import type { ChatServices } from '../chat/chat-services.js';
import { MAX_TEXT } from '../chat/conversation.js';
import { customerEvent } from '../chat/customer-events.js';
import { reply, replyRaw } from '../error-handler.js';
import type { HotRoute } from '../hot-path.js';
import { envelopeOf, type Api } from '../openapi.js';
import { customer, eventView } from '../presenters.js';
import { parseInput, rowNumber } from '../validate.js';

/** Both prefixes serve the customer chat API (the guide's widgets use either). */
export const CHAT_PREFIXES = ['/nexus/v3/chat', '/chat/v3/chat'] as const;

const MAX_USER_DATA = 50;
const KNOWN_FIELDS = ['firstName', 'lastName', 'nickname', 'email', 'phone', 'endpoint', 'stream'];

/**
 * The `data` of a widget request: `data[key]=value` form fields (express parses them flat) or a
 * JSON `{data: {...}}`. Values must be strings (numbers and booleans are turned into strings).
 */
export function widgetData(body: unknown): Record<string, unknown> {
  if (!body || typeof body !== 'object') return {};
  const record = body as Record<string, unknown>;
  if (record.data && typeof record.data === 'object' && !Array.isArray(record.data)) {
    return record.data as Record<string, unknown>;
  }
  const data: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(record)) {
    const match = /^data\[([^\]]+)\]$/.exec(key);
    if (match?.[1]) data[match[1]] = value;
  }
  return data;
}

const text = (max: number) => z.string().trim().max(max).optional();
const scalar = z.union([z.string(), z.number(), z.boolean()]).transform(String);

const sessionData = z
  .object({
    firstName: text(255),
    lastName: text(255),
    nickname: text(255),
    email: z
      .string()
      .trim()
      .email('must be an email address')
      .max(320)
      .optional()
      .or(z.literal('')),
    phone: z
      .string()
      .trim()
      .regex(/^\+?[\d\s().-]{4,32}$/, 'must be a phone number')
      .optional()
      .or(z.literal('')),
    endpoint: text(128),
    stream: text(64),
  })
  .catchall(scalar.pipe(z.string().max(1_024)))
  .superRefine((data, ctx) => {
    const extra = Object.keys(data).filter(key => !KNOWN_FIELDS.includes(key));
    if (extra.length > MAX_USER_DATA) {
      ctx.addIssue({
        code: 'custom',
        path: [],
        message: `at most ${MAX_USER_DATA} user data fields`,
      });
    }
    for (const key of extra) {
      if (!/^[\w.-]{1,64}$/.test(key)) {
        ctx.addIssue({
          code: 'custom',
          path: [key],
          message: 'user data keys are 1-64 letters, digits, "_", "-" or "."',
        });
      }
    }
  });

const messageData = z
  .object({
    type: z.literal('Text', { errorMap: () => ({ message: 'must be Text' }) }).default('Text'),
    text: z
      .string({ required_error: 'is required' })
      .max(MAX_TEXT, `must be at most ${MAX_TEXT} characters`)
      .refine(value => value.trim().length > 0, 'must not be empty'),
    clientMessageId: z.string().trim().min(1).max(128).optional(),
  })
  .strict();

const sessionParams = z.object({ sessionId: z.string().uuid('must be a session id') });

const widgetBody = z
  .object({ data: z.record(z.unknown()).optional() })
  .passthrough()
  .openapi('WidgetBody', {
    description: 'JSON `{data: {...}}`, or form fields `data[key]=value`.',
  });

const clientKey = (req: IncomingMessage) => {
  const value = req.headers['x-nexus-client-key'];
  return typeof value === 'string' && value ? value : undefined;
};

/**
 * Customer chat for web widgets (`pureengage-v3-rest`): open a session with the tenant's chat
 * API key, then read and write it with the session's `clientToken` in `x-nexus-client-key`.
 * Answers the message send's routes, which the hot path serves (api/hot-path.ts): their handler
 * reads only Node's request and response.
 */
export function chatRoutes({
  api,
  chat,
  publicUrl,
}: {
  api: Api;
  chat: ChatServices;
  publicUrl: string | undefined;
}): HotRoute[] {
  const hot: HotRoute[] = [];
  const selfUri = (req: Request, prefix: string, sessionId: string) =>
    `${publicUrl ?? `${req.protocol}://${req.get('host') ?? 'localhost'}`}${prefix}/sessions/${sessionId}`;

  for (const prefix of CHAT_PREFIXES) {
    const tag = prefix.startsWith('/nexus') ? 'Customer chat' : 'Customer chat (/chat/v3 alias)';
    api.route({
      method: 'post',
      path: `${prefix}/sessions`,
      tag,
      summary: 'Start a chat session',
      description:
        'Form fields `data[firstName]`, `data[lastName]`, `data[nickname]`, `data[email]`, `data[phone]`, `data[endpoint]`, `data[stream]`, and any other `data[key]` as user data; or the same as JSON `{data: {...}}`. Answers the session id, `selfUri` and the `clientToken` to send as `x-nexus-client-key`.',
      auth: 'nexus:consumer:chat',
      authFailure: 'INVALID_CONTACT_CENTER',
      form: true,
      body: widgetBody,
      responses: {
        201: {
          description: 'Started',
          schema: envelopeOf(
            z.object({
              id: z.string().uuid(),
              selfUri: z.string(),
              clientToken: z.string(),
              participantId: z.string().uuid(),
              interactionId: z.string().uuid(),
            }),
          ),
        },
      },
      async handle({ req, res, principal }) {
        const tenant = tenantOf(principal);
        const data = parseInput(sessionData, widgetData(req.body), 'body.data');
        const firstName = data.firstName || null;
        const lastName = data.lastName || null;
        const nickname = data.nickname || [firstName, lastName].filter(Boolean).join(' ');
        if (!nickname) {
          throw new AppError('INVALID_NICKNAME', undefined, 'body.data.nickname');
        }
        const userData: Record<string, string> = {};
        for (const [key, value] of Object.entries(data)) {
          if (!KNOWN_FIELDS.includes(key) && typeof value === 'string') userData[key] = value;
        }
        const { session, clientToken } = await chat.customers.startSession(tenant, {
          nickname,
          firstName,
          lastName,
          email: data.email || null,
          phone: data.phone || null,
          endpoint: data.endpoint || null,
          stream: data.stream || null,
          userData,
        });
        reply(res, 201, {
          id: session.id,
          selfUri: selfUri(req, prefix, session.id),
          clientToken,
          participantId: session.participant_id,
          interactionId: session.interaction_id,
        });
      },
    });

    api.route({
      method: 'get',
      path: `${prefix}/sessions/:sessionId/messages`,
      tag,
      summary: "Read the chat's events",
      description:
        'What the customer sees of the chat after `after` (a seq; 0 for all), in seq order: messages, participants joining and leaving (agents by display name), reads, the end; never routing events. Seqs have gaps where such events were skipped: page with `lastSeq` (the last seq read) as the next `after`, up to `limit` events read. Needs `x-nexus-client-key`.',
      auth: 'public',
      params: sessionParams,
      query: z
        .object({
          after: rowNumber(0).default(0),
          limit: z.coerce.number().int().min(1).max(500).default(500),
        })
        .strict(),
      responses: {
        200: {
          description: 'Events',
          schema: envelopeOf(
            z.object({ messages: z.array(eventView), lastSeq: z.number(), state: z.string() }),
          ),
        },
      },
      async handle({ params, query, req, res }) {
        const session = await chat.customers.sessionFor(clientKey(req), params.sessionId);
        const events = await chat.conversation.events(
          session.interaction_id,
          query.after,
          query.limit,
        );
        // Events customers do not see are skipped but read: lastSeq is the next `after`.
        reply(res, 200, {
          messages: events.flatMap(event => customerEvent(event) ?? []),
          lastSeq: events.at(-1)?.seq ?? query.after,
          state: session.state,
        });
      },
    });

    const sendPath = `${prefix}/sessions/:sessionId/messages`;
    const send = api.route({
      method: 'post',
      path: sendPath,
      tag,
      summary: 'Send a message',
      description: `\`data[type]=Text\`, \`data[text]\` (1-${MAX_TEXT} characters) and an optional \`data[clientMessageId]\`: a retry with the same id stores nothing more. Needs \`x-nexus-client-key\`.`,
      auth: 'public',
      form: true,
      params: sessionParams,
      body: widgetBody,
      responses: {
        202: {
          description: 'Accepted',
          schema: envelopeOf(z.object({ id: z.string().uuid(), duplicate: z.boolean() })),
        },
      },
      async handle({ params, req, res }) {
        const client = await chat.customers.clientFor(clientKey(req), params.sessionId);
        await chat.customers.limitSession(client.sessionId);
        const data = parseInput(messageData, widgetData(req.body), 'body.data');
        const result = await chat.customers.customerMessage(
          client,
          data.text,
          data.clientMessageId ?? null,
        );
        replyRaw(res, 202, { id: result.id, duplicate: !result.created });
      },
    });
    hot.push({ method: 'POST', path: sendPath, run: send, cors: true });

    api.route({
      method: 'post',
      path: `${prefix}/sessions/:sessionId/typing`,
      tag,
      summary: 'Typing indicator',
      description:
        '`data[typing]=true` (default) or `false`. Not stored; agents see it for a few seconds unless repeated.',
      auth: 'public',
      form: true,
      params: sessionParams,
      body: widgetBody,
      responses: {
        200: { description: 'Sent', schema: envelopeOf(z.object({ typing: z.boolean() })) },
      },
      async handle({ params, req, res }) {
        const session = await chat.customers.sessionFor(clientKey(req), params.sessionId);
        await chat.customers.limitSession(session.id);
        const data = parseInput(
          z
            .object({
              typing: z
                .union([z.boolean(), z.enum(['true', 'false']).transform(v => v === 'true')])
                .default(true),
            })
            .strict(),
          widgetData(req.body),
          'body.data',
        );
        chat.conversation.typing(
          session.tenant_id,
          session.interaction_id,
          customer(session),
          data.typing,
        );
        reply(res, 200, { typing: data.typing });
      },
    });

    api.route({
      method: 'post',
      path: `${prefix}/sessions/:sessionId/read`,
      tag,
      summary: 'Read receipt',
      description: '`data[seq]`: the customer has read everything up to this seq.',
      auth: 'public',
      form: true,
      params: sessionParams,
      body: widgetBody,
      responses: {
        200: { description: 'Recorded', schema: envelopeOf(z.object({ seq: z.number() })) },
      },
      async handle({ params, req, res }) {
        const session = await chat.customers.sessionFor(clientKey(req), params.sessionId);
        await chat.customers.limitSession(session.id);
        const data = parseInput(
          z.object({ seq: rowNumber(1) }).strict(),
          widgetData(req.body),
          'body.data',
        );
        await chat.conversation.read(
          session.tenant_id,
          session.interaction_id,
          customer(session),
          data.seq,
          'body.data.seq',
        );
        reply(res, 200, { seq: data.seq });
      },
    });

    api.route({
      method: 'post',
      path: `${prefix}/sessions/:sessionId/end`,
      tag,
      summary: 'End the chat',
      description: 'The customer leaves and the chat ends (FINISHED). Idempotent.',
      auth: 'public',
      params: sessionParams,
      responses: {
        200: { description: 'Ended', schema: envelopeOf(z.object({ state: z.literal('ended') })) },
      },
      async handle({ params, req, res }) {
        const session = await chat.customers.sessionFor(clientKey(req), params.sessionId);
        await chat.conversation.finish(
          session.tenant_id,
          session.interaction_id,
          customer(session),
          session.id,
        );
        reply(res, 200, { state: 'ended' });
      },
    });
  }
  return hot;
}

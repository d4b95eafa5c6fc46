import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';

/**
 * The AI connector's tables: the customer messages the hub delivered (`athena_messages`, one
 * row per message and connector, so a delivery the hub repeats is stored once), the tenants'
 * NLU providers (`athena_providers`, credentials sealed by the caller) and knowledge articles
 * (`athena_articles`, full-text searched).
 */

export interface ReceivedMessage {
  tenantId: string;
  messageId: string;
  connector: string;
  interactionId: string;
  eventId: string;
  deliveryId: string | null;
  fromType: string;
  text: string;
}

/**
 * Stores delivered messages in one statement; answers the keys (`messageId` + NUL + `connector`)
 * of the ones stored now (the others were stored before: repeated deliveries). The messages are
 * of one tenant or several.
 */
export async function insertReceivedMessages(
  tx: CommonQueryMethods,
  messages: readonly ReceivedMessage[],
): Promise<Set<string>> {
  if (messages.length === 0) return new Set();
  const rows = await tx.any(sql.type(
    z.object({ tenant_id: z.string(), message_id: z.string(), connector: z.string() }),
  )`
    INSERT INTO athena_messages
      (tenant_id, message_id, connector, interaction_id, event_id, delivery_id, from_type, text)
    SELECT m."tenantId", m."messageId", m.connector, m."interactionId", m."eventId",
           m."deliveryId", m."fromType", m.text
    FROM jsonb_to_recordset(${sql.jsonb(messages as never)}) AS m(
      "tenantId" text, "messageId" uuid, connector text, "interactionId" uuid, "eventId" text,
      "deliveryId" text, "fromType" text, text text)
    ON CONFLICT (tenant_id, message_id, connector) DO NOTHING
    RETURNING tenant_id, message_id::text AS message_id, connector`);
  return new Set(rows.map(row => receivedKey(row.tenant_id, row.message_id, row.connector)));
}

/** A delivered message's key in {@link insertReceivedMessages}' answer. */
export const receivedKey = (tenantId: string, messageId: string, connector: string) =>
  `${tenantId}\u0000${messageId}\u0000${connector}`;

const storedMessage = z.object({
  tenant_id: z.string(),
  message_id: z.string(),
  connector: z.string(),
  interaction_id: z.string(),
  text: z.string(),
  from_type: z.string(),
  outcome: z.string().nullable(),
});
export type StoredMessage = z.infer<typeof storedMessage>;

/** Delivered messages by key, for concurrent jobs in one statement; null for a key not stored. */
export async function findReceivedMessages(
  db: CommonQueryMethods,
  keys: readonly { tenantId: string; messageId: string; connector: string }[],
): Promise<(StoredMessage | null)[]> {
  // A key that is not a message id is stored nowhere (and must not fail the others' statement).
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  const wanted = keys.filter(key => UUID.test(key.messageId));
  if (wanted.length === 0) return keys.map(() => null);
  const rows = await db.any(sql.type(storedMessage)`
    SELECT m.tenant_id, m.message_id, m.connector, m.interaction_id, m.text, m.from_type,
           m.outcome
    FROM athena_messages m
    JOIN jsonb_to_recordset(${sql.jsonb(wanted as never)})
      AS k("tenantId" text, "messageId" uuid, connector text)
      ON m.tenant_id = k."tenantId" AND m.message_id = k."messageId"
     AND m.connector = k.connector`);
  const byKey = new Map(
    rows.map(row => [receivedKey(row.tenant_id, row.message_id, row.connector), row]),
  );
  return keys.map(
    key => byKey.get(receivedKey(key.tenantId, key.messageId.toLowerCase(), key.connector)) ?? null,
  );
}

export type MessageOutcome =
  'suggested' | 'no-match' | 'failed' | 'bot-reply' | 'bot-fallback' | 'handoff' | 'skipped';

/** What the connector records of a message it handled. */
export interface OutcomeFields {
  outcome: MessageOutcome;
  provider: string | null;
  intent: string | null;
  confidence: number | null;
}

export async function recordOutcome(
  db: CommonQueryMethods,
  key: { tenantId: string; messageId: string; connector: string },
  outcome: OutcomeFields,
): Promise<void> {
  await db.query(sql.unsafe`
    UPDATE athena_messages SET
      outcome = ${outcome.outcome}, provider = ${outcome.provider}, intent = ${outcome.intent},
      confidence = ${outcome.confidence}, handled_at = now()
    WHERE tenant_id = ${key.tenantId} AND message_id = ${key.messageId}
      AND connector = ${key.connector}`);
}

/** {@link recordOutcome} for the outcomes of concurrent jobs, in one statement. */
export async function recordOutcomes(
  db: CommonQueryMethods,
  items: readonly ({ tenantId: string; messageId: string; connector: string } & OutcomeFields)[],
): Promise<void> {
  if (items.length === 0) return;
  await db.query(sql.unsafe`
    UPDATE athena_messages m SET
      outcome = o.outcome, provider = o.provider, intent = o.intent,
      confidence = o.confidence, handled_at = now()
    FROM jsonb_to_recordset(${sql.jsonb(items as never)}) AS o(
      "tenantId" text, "messageId" uuid, connector text, outcome text, provider text,
      intent text, confidence real)
    WHERE m.tenant_id = o."tenantId" AND m.message_id = o."messageId"
      AND m.connector = o.connector`);
}

const providerRow = z.object({
  name: z.string(),
  provider: z.string(),
  url: z.string().nullable(),
  data: z.record(z.unknown()),
  secret_sealed: z.string().nullable(),
});
export type ProviderRow = z.infer<typeof providerRow>;

export async function upsertProvider(
  db: CommonQueryMethods,
  tenantId: string,
  row: ProviderRow,
): Promise<void> {
  await db.query(sql.unsafe`
    INSERT INTO athena_providers (tenant_id, name, provider, url, data, secret_sealed)
    VALUES (${tenantId}, ${row.name}, ${row.provider}, ${row.url}, ${sql.jsonb(row.data as never)},
            ${row.secret_sealed})
    ON CONFLICT (tenant_id, name) DO UPDATE SET
      provider = EXCLUDED.provider, url = EXCLUDED.url, data = EXCLUDED.data,
      secret_sealed = EXCLUDED.secret_sealed, updated_at = now()`);
}

export async function listProviders(
  db: CommonQueryMethods,
  tenantId: string,
): Promise<readonly ProviderRow[]> {
  return db.any(sql.type(providerRow)`
    SELECT name, provider, url, data, secret_sealed
    FROM athena_providers WHERE tenant_id = ${tenantId} ORDER BY name`);
}

export async function deleteProvider(
  db: CommonQueryMethods,
  tenantId: string,
  name: string,
): Promise<boolean> {
  const result = await db.query(sql.unsafe`
    DELETE FROM athena_providers WHERE tenant_id = ${tenantId} AND name = ${name}`);
  return result.rowCount > 0;
}

export interface Article {
  id: string;
  title: string;
  body: string;
  url: string | null;
}

/** Replaces a tenant's articles with these (in the caller's transaction). */
export async function replaceArticles(
  tx: CommonQueryMethods,
  tenantId: string,
  articles: readonly Article[],
): Promise<void> {
  await tx.query(sql.unsafe`DELETE FROM athena_articles WHERE tenant_id = ${tenantId}`);
  if (articles.length === 0) return;
  await tx.query(sql.unsafe`
    INSERT INTO athena_articles (tenant_id, id, title, body, url)
    SELECT ${tenantId}, a.id, a.title, a.body, a.url
    FROM jsonb_to_recordset(${sql.jsonb(articles as never)})
      AS a(id text, title text, body text, url text)`);
}

const foundArticle = z.object({
  id: z.string(),
  title: z.string(),
  body: z.string(),
  url: z.string().nullable(),
  rank: z.number(),
});

/**
 * The tenant's articles that best match a text: any of its words (stemmed, stop words out),
 * ranked by `ts_rank_cd` normalised to 0..1 (`rank / (rank + 1)`), best first.
 */
export async function searchArticles(
  db: CommonQueryMethods,
  tenantId: string,
  text: string,
  limit: number,
): Promise<readonly z.infer<typeof foundArticle>[]> {
  return db.any(sql.type(foundArticle)`
    WITH query AS (
      -- The text's lexemes (stemmed, stop words out), quoted and ORed; cast, not parsed again.
      SELECT string_agg(quote_literal(lexeme), ' | ')::tsquery AS q
      FROM unnest(to_tsvector('english', ${text})) AS words(lexeme)
    )
    SELECT a.id, a.title, a.body, a.url,
           ts_rank_cd(a.search, query.q, 32)::float8 AS rank
    FROM athena_articles a, query
    WHERE a.tenant_id = ${tenantId} AND query.q IS NOT NULL AND a.search @@ query.q
    ORDER BY rank DESC, a.id
    LIMIT ${limit}`);
}

/**
 * Counts one bot turn of a conversation: `missed` adds to the misses in a row (a message the bot
 * did not understand), an understood one resets them. Answers the misses in a row after it.
 */
export async function countBotTurn(
  db: CommonQueryMethods,
  tenantId: string,
  interactionId: string,
  missed: boolean,
): Promise<number> {
  return db.oneFirst(sql.type(z.object({ misses: z.number() }))`
    INSERT INTO athena_bot_sessions (tenant_id, interaction_id, turns, misses)
    VALUES (${tenantId}, ${interactionId}, 1, ${missed ? 1 : 0})
    ON CONFLICT (tenant_id, interaction_id) DO UPDATE SET
      turns = athena_bot_sessions.turns + 1,
      misses = CASE WHEN ${missed} THEN athena_bot_sessions.misses + 1 ELSE 0 END,
      updated_at = now()
    RETURNING misses`);
}

/** Whether the tenant has knowledge articles at all. */
export async function hasArticles(db: CommonQueryMethods, tenantId: string): Promise<boolean> {
  return db.oneFirst(sql.type(z.object({ found: z.boolean() }))`
    SELECT EXISTS (SELECT 1 FROM athena_articles WHERE tenant_id = ${tenantId}) AS found`);
}

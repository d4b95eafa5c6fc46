import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';

/** SQL on `channels`: a tenant's channels (the guide's `cxc.` rules) and the sender ids they own. */

export const channelRow = z.object({
  tenant_id: z.string(),
  name: z.string(),
  channel_id: z.string(),
  channel_type: z.string(),
  endpoint: z.string().nullable(),
  interaction_subtype: z.string().nullable(),
  interaction_type: z.string().nullable(),
  media: z.string().nullable(),
  cxc_only: z.boolean(),
  provider: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
});
export type ChannelRow = z.infer<typeof channelRow>;

const columns = sql.fragment`tenant_id, name, channel_id, channel_type, endpoint,
  interaction_subtype, interaction_type, media, cxc_only, provider, created_at, updated_at`;

export interface ChannelDefinition {
  tenantId: string;
  name: string;
  channelId: string;
  channelType: string;
  endpoint: string | null;
  interactionSubtype: string | null;
  interactionType: string | null;
  media: string | null;
  cxcOnly: boolean;
  provider: string | null;
}

/**
 * Creates or replaces a channel section. Throws slonik's UniqueIntegrityConstraintViolationError
 * when another channel has the sender id (`channels_sender_key_idx`, migration 0017: a number,
 * short code or domain belongs to one channel of one tenant); {@link findSenderOwner} says whose.
 */
export async function upsertChannel(
  db: CommonQueryMethods,
  channel: ChannelDefinition,
): Promise<{ row: ChannelRow; created: boolean }> {
  const row = await db.one(sql.type(channelRow.extend({ created: z.boolean() }))`
    INSERT INTO channels (tenant_id, name, channel_id, channel_type, endpoint, interaction_subtype,
                          interaction_type, media, cxc_only, provider)
    VALUES (${channel.tenantId}, ${channel.name}, ${channel.channelId}, ${channel.channelType},
            ${channel.endpoint}, ${channel.interactionSubtype}, ${channel.interactionType},
            ${channel.media}, ${channel.cxcOnly}, ${channel.provider})
    ON CONFLICT (tenant_id, name) DO UPDATE SET
      channel_id = EXCLUDED.channel_id, channel_type = EXCLUDED.channel_type,
      endpoint = EXCLUDED.endpoint, interaction_subtype = EXCLUDED.interaction_subtype,
      interaction_type = EXCLUDED.interaction_type, media = EXCLUDED.media,
      cxc_only = EXCLUDED.cxc_only, provider = EXCLUDED.provider, updated_at = now()
    RETURNING ${columns}, (xmax = 0) AS created`);
  const { created, ...rest } = row;
  return { row: rest, created };
}

export async function findChannel(
  db: CommonQueryMethods,
  tenantId: string,
  name: string,
): Promise<ChannelRow | undefined> {
  const row = await db.maybeOne(sql.type(channelRow)`
    SELECT ${columns} FROM channels WHERE tenant_id = ${tenantId} AND name = ${name}`);
  return row ?? undefined;
}

/** The channel a message to `channelId` (a number, a domain) belongs to. */
export async function findChannelByChannelId(
  db: CommonQueryMethods,
  tenantId: string,
  channelId: string,
): Promise<ChannelRow | undefined> {
  const row = await db.maybeOne(sql.type(channelRow)`
    SELECT ${columns} FROM channels WHERE tenant_id = ${tenantId} AND channel_id = ${channelId}`);
  return row ?? undefined;
}

/**
 * The tenant's channel of a sender id however the number is written (`+1 800 555 0100`,
 * `18005550100` and `+18005550100` are one number; see `channels_sender_key`).
 */
export async function findChannelBySender(
  db: CommonQueryMethods,
  tenantId: string,
  sender: string,
): Promise<ChannelRow | undefined> {
  const row = await db.maybeOne(sql.type(channelRow)`
    SELECT ${columns} FROM channels
    WHERE channels_sender_key(channel_id) = channels_sender_key(${sender})
      AND tenant_id = ${tenantId}`);
  return row ?? undefined;
}

/** Which tenant's channel holds a sender id, if any. */
export async function findSenderOwner(
  db: CommonQueryMethods,
  sender: string,
): Promise<{ tenantId: string; name: string } | undefined> {
  const row = await db.maybeOne(sql.type(z.object({ tenant_id: z.string(), name: z.string() }))`
    SELECT tenant_id, name FROM channels
    WHERE channels_sender_key(channel_id) = channels_sender_key(${sender})`);
  return row ? { tenantId: row.tenant_id, name: row.name } : undefined;
}

export async function listChannels(
  db: CommonQueryMethods,
  tenantId: string,
): Promise<readonly ChannelRow[]> {
  return db.any(sql.type(channelRow)`
    SELECT ${columns} FROM channels WHERE tenant_id = ${tenantId} ORDER BY name`);
}

export async function deleteChannel(
  db: CommonQueryMethods,
  tenantId: string,
  name: string,
): Promise<boolean> {
  const result = await db.query(sql.unsafe`
    DELETE FROM channels WHERE tenant_id = ${tenantId} AND name = ${name}`);
  return result.rowCount > 0;
}

/**
 * The tenant's email channel (`channelType: email`) of a domain, whatever its case (through the
 * sender key's index, migration 0017).
 */
export async function findEmailChannel(
  db: CommonQueryMethods,
  tenantId: string,
  domain: string,
): Promise<ChannelRow | undefined> {
  const row = await db.maybeOne(sql.type(channelRow)`
    SELECT ${columns} FROM channels
    WHERE tenant_id = ${tenantId} AND channel_type = 'email'
      AND channels_sender_key(channel_id) = channels_sender_key(${domain})
    LIMIT 1`);
  return row ?? undefined;
}

/** The tenant whose email channel has the domain (a domain is one tenant's), if any. */
export async function tenantOfEmailDomain(
  db: CommonQueryMethods,
  domain: string,
): Promise<string | undefined> {
  const tenant = await db.maybeOneFirst(sql.type(z.object({ tenant_id: z.string() }))`
    SELECT tenant_id FROM channels
    WHERE channel_type = 'email' AND channels_sender_key(channel_id) = channels_sender_key(${domain})
    LIMIT 1`);
  return tenant ?? undefined;
}

/**
 * The tenant's SMS senders an agent may start a conversation from: its `chat.*` channels that
 * take conversations (not email, not `cxcOnly` campaign numbers), by name.
 */
export async function listSmsSenders(
  db: CommonQueryMethods,
  tenantId: string,
): Promise<readonly ChannelRow[]> {
  return db.any(sql.type(channelRow)`
    SELECT ${columns} FROM channels
    WHERE tenant_id = ${tenantId} AND name LIKE 'chat.%' AND channel_type <> 'email'
      AND NOT cxc_only
    ORDER BY name`);
}

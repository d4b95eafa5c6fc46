-- A sender id belongs to one tenant (issue 16, defect 2). Channel ids were unique per tenant
-- only, so a tenant could provision another's SMS number and take its MO traffic, or send from it.
--
-- Numbers are compared as the hub reads them: `+1 (800) 555-0100`, `18005550100` and
-- `+18005550100` are one number (lib/phone.ts: separators dropped, `+` or a leading `00` implied).
-- Anything else (an Async gateway's channel id, an email domain) compares trimmed and
-- case-insensitively.
CREATE FUNCTION channels_sender_key(channel_id text) RETURNS text
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  AS $$
    SELECT CASE
      WHEN channel_id ~ '^\s*\+?[0-9 ().-]*[0-9][0-9 ().-]*$'
        THEN regexp_replace(regexp_replace(channel_id, '[^0-9]', '', 'g'), '^00(?=[0-9]{5})', '')
      ELSE lower(btrim(channel_id))
    END
  $$;

-- A database where a sender id is already claimed twice cannot take the index. Nothing is
-- guessed (which tenant keeps a number decides who receives its texts): the migration stops and
-- names the rows; the operator deletes the channels that must go (with the previous release's
-- DELETE /nexus/v3/provisioning/channels/{ccid}/{name}, or in SQL) and starts the hub again.
DO $$
DECLARE
  clashes text;
BEGIN
  SELECT string_agg(format('%s: %s', key, claims), '; ' ORDER BY key) INTO clashes
  FROM (
    SELECT channels_sender_key(channel_id) AS key,
           string_agg(format('tenant %s channel %s (channelId %s, since %s)', tenant_id, name,
                             channel_id, created_at), ', ' ORDER BY created_at) AS claims
    FROM channels
    GROUP BY 1
    HAVING count(*) > 1
  ) twice;
  IF clashes IS NOT NULL THEN
    RAISE EXCEPTION 'sender ids claimed by more than one channel: %', clashes
      USING HINT = 'Keep each number, short code or domain in one channel: delete the others '
                   '(DELETE FROM channels WHERE tenant_id = ... AND name = ...; docs/provisioning.md, '
                   '"Moving a number to another tenant"), then start the hub again.';
  END IF;
END
$$;

-- Enforced by the database, so two concurrent claims cannot both win. It also serves the MO
-- lookup (`channels_sender_key(channel_id) = channels_sender_key($address)`).
CREATE UNIQUE INDEX channels_sender_key_idx ON channels (channels_sender_key(channel_id));

-- Customers' numbers are now stored in E.164 (lib/phone.ts). An older release kept the MSISDN an
-- aggregator sent as given, digits only (`15551234567`, or `0015551234567` with the international
-- call prefix); new texts carry `+15551234567`. The opt-out ledger is rewritten so that a STOP
-- given before the upgrade still holds (where several forms exist for a sender, the latest change
-- wins, the E.164 row on a tie), open SMS conversations so that the next text threads into them,
-- and contacts' phone identifiers so that a returning customer is matched to their contact.
-- Closed conversations and messages keep the form they were written with.
WITH forms AS (
  SELECT ctid AS row_id, tenant_id, sender, address, updated_at,
         CASE WHEN address ~ '^[1-9][0-9]{6,14}$' THEN '+' || address
              WHEN address ~ '^00[1-9][0-9]{6,14}$' THEN '+' || substr(address, 3)
              ELSE address END AS e164
  FROM sms_consent
), ranked AS (
  SELECT row_id, row_number() OVER (PARTITION BY tenant_id, sender, e164
                                    ORDER BY updated_at DESC, address = e164 DESC) AS rank
  FROM forms
)
DELETE FROM sms_consent c USING ranked r WHERE c.ctid = r.row_id AND r.rank > 1;
UPDATE sms_consent SET address = '+' || address WHERE address ~ '^[1-9][0-9]{6,14}$';
UPDATE sms_consent SET address = '+' || substr(address, 3) WHERE address ~ '^00[1-9][0-9]{6,14}$';
UPDATE sms_consent_changes SET address = '+' || address WHERE address ~ '^[1-9][0-9]{6,14}$';
UPDATE sms_consent_changes SET address = '+' || substr(address, 3)
WHERE address ~ '^00[1-9][0-9]{6,14}$';
-- One open conversation per number: a legacy form whose E.164 twin is open stays as it is, and of
-- two legacy forms of one number the latest moved.
WITH legacy AS (
  SELECT id, tenant_id, channel, updated_at,
         CASE WHEN customer_address ~ '^[1-9][0-9]{6,14}$' THEN '+' || customer_address
              ELSE '+' || substr(customer_address, 3) END AS e164
  FROM interactions
  WHERE state = 'open' AND channel IS NOT NULL AND customer_address ~ '^(00)?[1-9][0-9]{6,14}$'
), chosen AS (
  SELECT DISTINCT ON (l.tenant_id, l.channel, l.e164) l.id, l.e164
  FROM legacy l
  WHERE NOT EXISTS (
    SELECT 1 FROM interactions x
    WHERE x.tenant_id = l.tenant_id AND x.channel = l.channel AND x.state = 'open'
      AND x.customer_address = l.e164)
  ORDER BY l.tenant_id, l.channel, l.e164, l.updated_at DESC, l.id
)
UPDATE interactions i SET customer_address = chosen.e164 FROM chosen WHERE i.id = chosen.id;
-- Contacts' phone identifiers, likewise: a legacy form whose E.164 twin exists in the tenant
-- stays as it is (both point at a contact; new texts match the E.164 one), and of two legacy forms
-- of one number the earliest moved.
WITH legacy AS (
  SELECT tenant_id, value, created_at,
         CASE WHEN value ~ '^[1-9][0-9]{6,14}$' THEN '+' || value
              ELSE '+' || substr(value, 3) END AS e164
  FROM contact_identifiers
  WHERE kind = 'phone' AND value ~ '^(00)?[1-9][0-9]{6,14}$'
), chosen AS (
  SELECT DISTINCT ON (l.tenant_id, l.e164) l.tenant_id, l.value, l.e164
  FROM legacy l
  WHERE NOT EXISTS (
    SELECT 1 FROM contact_identifiers x
    WHERE x.tenant_id = l.tenant_id AND x.kind = 'phone' AND x.value = l.e164)
  ORDER BY l.tenant_id, l.e164, l.created_at, l.value
)
UPDATE contact_identifiers c SET value = chosen.e164
FROM chosen
WHERE c.tenant_id = chosen.tenant_id AND c.kind = 'phone' AND c.value = chosen.value;

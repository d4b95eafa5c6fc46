-- Email: every mail is one row. Outbound mail (a campaign record, an agent's reply) is sent by
-- the outbound-email queue through the tenant's provider; its Message-ID is chosen at intake and
-- kept, so a retried send carries the same one and bounces, replies and receipts find their mail
-- by it. Inbound mail (a customer's) keeps the Message-ID it came with; threads are followed by
-- In-Reply-To and References through these ids.
CREATE TABLE email_messages (
  id                  uuid        PRIMARY KEY,
  tenant_id           text        NOT NULL,
  direction           text        NOT NULL DEFAULT 'outbound'
                                  CHECK (direction IN ('outbound', 'inbound')),
  -- The conversation the mail belongs to, and its message there (NULL for campaign mail nobody
  -- answered yet).
  interaction_id      uuid,
  chat_message_id     uuid,
  -- A campaign record: the campaign and the caller's record id (NULL for conversation mail).
  campaign            text,
  record_id           text,
  -- The sending domain: the channelId of the tenant's email channel it belongs to.
  domain              text        NOT NULL,
  from_address        text        NOT NULL,
  from_name           text,
  to_addresses        jsonb       NOT NULL,
  cc_addresses        jsonb       NOT NULL DEFAULT '[]',
  bcc_addresses       jsonb       NOT NULL DEFAULT '[]',
  reply_to            text,
  subject             text        NOT NULL,
  text_body           text        NOT NULL,
  html_body           text,
  message_id          text        NOT NULL,
  in_reply_to         text,
  reference_ids       text[]      NOT NULL DEFAULT '{}',
  -- Stored attachments: [{mediaId, filename, contentType, size}] (the bytes are in `media`).
  attachments         jsonb       NOT NULL DEFAULT '[]',
  -- Outbound mail only (NULL for inbound).
  delivery_status     text        DEFAULT 'queued'
                      CHECK (delivery_status IN ('queued', 'sent', 'delivered', 'bounced',
                                                 'complained', 'failed', 'opted-out')),
  delivery_reason     text,
  delivery_code       text,
  delivery_updated_at timestamptz NOT NULL DEFAULT now(),
  provider            text,
  provider_message_id text,
  created_at          timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT email_messages_record_key UNIQUE (tenant_id, campaign, record_id),
  CONSTRAINT email_messages_message_id_key UNIQUE (tenant_id, message_id),
  CONSTRAINT email_messages_status_check CHECK ((direction = 'outbound') = (delivery_status IS NOT NULL))
);
CREATE INDEX email_messages_provider_idx ON email_messages (tenant_id, provider, provider_message_id)
  WHERE provider_message_id IS NOT NULL;
CREATE INDEX email_messages_interaction_idx ON email_messages (interaction_id, created_at)
  WHERE interaction_id IS NOT NULL;
CREATE INDEX email_messages_campaign_idx ON email_messages (tenant_id, campaign, record_id)
  WHERE campaign IS NOT NULL;

-- The suppression list: addresses no campaign mail goes to (hard bounces, complaints, one-click
-- unsubscribes, an operator's entry), per tenant; every change kept, as the SMS opt-out ledger.
CREATE TABLE email_consent (
  tenant_id   text        NOT NULL,
  address     text        NOT NULL,
  suppressed  boolean     NOT NULL,
  reason      text        NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, address)
);
CREATE INDEX email_consent_suppressed_idx ON email_consent (tenant_id, address) WHERE suppressed;

CREATE TABLE email_consent_changes (
  id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id   text        NOT NULL,
  address     text        NOT NULL,
  action      text        NOT NULL CHECK (action IN ('suppress', 'lift')),
  reason      text        NOT NULL
              CHECK (reason IN ('hard-bounce', 'complaint', 'unsubscribe', 'manual')),
  source      text        NOT NULL,
  detail      text,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX email_consent_changes_address_idx ON email_consent_changes (tenant_id, address, id);

-- Provider feedback already applied (a SparkPost batch id or event id, a bounce report's
-- Message-ID), so a provider's retry changes nothing twice.
CREATE TABLE email_feedback_seen (
  tenant_id   text        NOT NULL,
  source      text        NOT NULL,
  key         text        NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, source, key)
);

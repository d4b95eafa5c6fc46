-- Campaign SMS (CX-Contact-like callers): records submitted in bulk, each sent through the
-- channel's provider with the same status vocabulary and receipts as conversation messages.
CREATE TABLE sms_campaign_records (
  id                  uuid        PRIMARY KEY,
  tenant_id           text        NOT NULL,
  campaign            text        NOT NULL,
  record_id           text        NOT NULL,
  sender              text        NOT NULL,
  address             text        NOT NULL,
  text                text        NOT NULL,
  delivery_status     text        NOT NULL DEFAULT 'accepted'
                                  CHECK (delivery_status IN ('accepted', 'sent', 'delivered', 'failed')),
  delivery_reason     text,
  delivery_updated_at timestamptz NOT NULL DEFAULT now(),
  encoding            text        NOT NULL,
  segments            integer     NOT NULL,
  provider            text,
  provider_message_id text,
  created_at          timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT sms_campaign_records_key UNIQUE (tenant_id, campaign, record_id)
);
CREATE INDEX sms_campaign_records_provider_idx ON sms_campaign_records (tenant_id, provider_message_id)
  WHERE provider_message_id IS NOT NULL;

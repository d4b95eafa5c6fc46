-- Texts to cxcOnly channels (campaign numbers): kept as replies to the campaign that last wrote
-- to that number from that sender, not as chats.
CREATE TABLE sms_campaign_replies (
  id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id    text        NOT NULL,
  sender       text        NOT NULL,
  address      text        NOT NULL,
  external_id  text        NOT NULL,
  text         text        NOT NULL,
  campaign     text,
  record_id    text,
  keyword      text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT sms_campaign_replies_key UNIQUE (tenant_id, sender, external_id)
);
CREATE INDEX sms_campaign_replies_campaign_idx ON sms_campaign_replies (tenant_id, campaign, id);

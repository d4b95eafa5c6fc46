-- Inbound SMS (and other channels with a customer address): one open interaction per
-- (tenant, channel, customer address), so a customer's texts thread into one conversation.
ALTER TABLE interactions
  ADD COLUMN channel          text,
  ADD COLUMN customer_address text;
CREATE UNIQUE INDEX interactions_open_thread_idx ON interactions (tenant_id, channel, customer_address)
  WHERE state = 'open' AND channel IS NOT NULL;

-- Inbound messages the hub refused (unknown number, say): kept for the operator, not processed.
CREATE TABLE sms_rejections (
  id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id    text        NOT NULL,
  reason       text        NOT NULL,
  from_address text,
  to_address   text,
  external_id  text,
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sms_rejections_tenant_idx ON sms_rejections (tenant_id, created_at);

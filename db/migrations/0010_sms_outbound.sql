-- Outbound SMS: each message to a customer's phone carries its delivery status (one vocabulary
-- for every provider: accepted, sent, delivered, failed), the provider's id for it (receipts find
-- their message by it), and its encoding and segment count.
ALTER TABLE messages
  ADD COLUMN delivery_status      text CHECK (delivery_status IN ('accepted', 'sent', 'delivered', 'failed')),
  ADD COLUMN delivery_reason      text,
  ADD COLUMN delivery_updated_at  timestamptz,
  ADD COLUMN provider             text,
  ADD COLUMN provider_message_id  text,
  ADD COLUMN encoding             text,
  ADD COLUMN segments             integer;
CREATE UNIQUE INDEX messages_provider_id_idx ON messages (tenant_id, provider, provider_message_id)
  WHERE provider_message_id IS NOT NULL;

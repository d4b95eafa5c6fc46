-- An outbound message to the customer that finally failed flags its interaction, so an agent can
-- follow up another way (the tenant's undelivered view).
ALTER TABLE interactions
  ADD COLUMN undelivered_at     timestamptz,
  ADD COLUMN undelivered_reason text;
CREATE INDEX interactions_undelivered_idx ON interactions (tenant_id, undelivered_at)
  WHERE undelivered_at IS NOT NULL;

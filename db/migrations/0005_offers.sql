-- Offers: routing offers an interaction to an agent, who accepts or rejects it before
-- `offer_expires_at`; an offered interaction counts against the agent's capacity.
ALTER TABLE interactions DROP CONSTRAINT interactions_routing_state_check;
ALTER TABLE interactions ADD CONSTRAINT interactions_routing_state_check
  CHECK (routing_state IN ('queued', 'offered', 'assigned'));
ALTER TABLE interactions ADD COLUMN offer_expires_at timestamptz;
DROP INDEX interactions_agent_load_idx;
CREATE INDEX interactions_agent_load_idx ON interactions (assigned_agent_id)
  WHERE routing_state IN ('offered', 'assigned') AND state = 'open';
CREATE INDEX interactions_offers_idx ON interactions (offer_expires_at) WHERE routing_state = 'offered';

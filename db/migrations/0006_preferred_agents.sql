-- Returning customers and parked chats go back to their agent first: an interaction may prefer
-- an agent until `preferred_until`, after which any agent of the queue may get it. A parked
-- interaction (`asynchold`) frees the agent's capacity until the customer writes again.
ALTER TABLE interactions DROP CONSTRAINT interactions_routing_state_check;
ALTER TABLE interactions ADD CONSTRAINT interactions_routing_state_check
  CHECK (routing_state IN ('queued', 'offered', 'assigned', 'parked'));
ALTER TABLE interactions
  ADD COLUMN preferred_agent_id uuid REFERENCES agents (id),
  ADD COLUMN preferred_until    timestamptz;
ALTER TABLE routing_queues
  ADD COLUMN last_agent_wait_ms integer NOT NULL DEFAULT 60000 CHECK (last_agent_wait_ms >= 0);

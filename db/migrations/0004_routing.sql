-- Routing: queues of a tenant, the endpoints that lead to them, the agents that serve them, agent
-- presence and capacity, and every routing decision with its reason (design §2, §4, §6).

CREATE TABLE routing_queues (
  tenant_id         text        NOT NULL REFERENCES tenants (id),
  name              text        NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$'),
  offer_timeout_ms  integer     NOT NULL DEFAULT 30000 CHECK (offer_timeout_ms > 0),
  bot_first         boolean     NOT NULL DEFAULT false,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, name)
);

-- An endpoint leads to one queue of its tenant.
CREATE TABLE routing_queue_endpoints (
  tenant_id   text NOT NULL,
  endpoint    text NOT NULL,
  queue_name  text NOT NULL,
  PRIMARY KEY (tenant_id, endpoint),
  FOREIGN KEY (tenant_id, queue_name) REFERENCES routing_queues (tenant_id, name) ON DELETE CASCADE
);

CREATE TABLE routing_queue_agents (
  tenant_id   text NOT NULL,
  queue_name  text NOT NULL,
  agent_id    uuid NOT NULL REFERENCES agents (id),
  PRIMARY KEY (tenant_id, queue_name, agent_id),
  FOREIGN KEY (tenant_id, queue_name) REFERENCES routing_queues (tenant_id, name) ON DELETE CASCADE
);
CREATE INDEX routing_queue_agents_agent_idx ON routing_queue_agents (agent_id);

-- Presence and capacity. `idle_since`: when the agent last became ready or last got work; the
-- agent idle the longest is chosen first.
ALTER TABLE agents
  ADD COLUMN ready      boolean     NOT NULL DEFAULT false,
  ADD COLUMN capacity   integer     NOT NULL DEFAULT 3 CHECK (capacity >= 0),
  ADD COLUMN idle_since timestamptz;

ALTER TABLE interactions
  ADD COLUMN queue_name        text,
  ADD COLUMN routing_state     text CHECK (routing_state IN ('queued', 'assigned')),
  ADD COLUMN queued_at         timestamptz,
  ADD COLUMN assigned_agent_id uuid REFERENCES agents (id);
CREATE INDEX interactions_backlog_idx ON interactions (tenant_id, queue_name, queued_at)
  WHERE routing_state = 'queued' AND state = 'open';
CREATE INDEX interactions_agent_load_idx ON interactions (assigned_agent_id)
  WHERE routing_state = 'assigned' AND state = 'open';

CREATE TABLE routing_decisions (
  id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id       text        NOT NULL,
  interaction_id  uuid        NOT NULL REFERENCES interactions (id),
  queue_name      text,
  agent_id        uuid,
  decision        text        NOT NULL,
  reason          text        NOT NULL,
  waited_ms       bigint,
  decided_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX routing_decisions_interaction_idx ON routing_decisions (interaction_id, id);

-- Customer chat, agents, contacts, interactions, messages and the event log (design §4, §6).

-- Routing endpoints a chat names (`data[endpoint]`); the routing feature attaches queues to them.
CREATE TABLE endpoints (
  tenant_id   text        NOT NULL REFERENCES tenants (id),
  name        text        NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$'),
  description text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, name)
);

CREATE TABLE agents (
  id          uuid        PRIMARY KEY,
  tenant_id   text        NOT NULL REFERENCES tenants (id),
  username    text        NOT NULL,
  name        text        NOT NULL,
  enabled     boolean     NOT NULL DEFAULT true,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT agents_tenant_username_key UNIQUE (tenant_id, username)
);

CREATE TABLE contacts (
  id          uuid        PRIMARY KEY,
  tenant_id   text        NOT NULL REFERENCES tenants (id),
  first_name  text,
  last_name   text,
  nickname    text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contacts_tenant_idx ON contacts (tenant_id, created_at);

-- How a contact is recognised: email (lower-cased), phone (digits and a leading +), external id.
CREATE TABLE contact_identifiers (
  tenant_id   text        NOT NULL,
  kind        text        NOT NULL CHECK (kind IN ('email', 'phone', 'external')),
  value       text        NOT NULL,
  contact_id  uuid        NOT NULL REFERENCES contacts (id),
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, kind, value)
);
CREATE INDEX contact_identifiers_contact_idx ON contact_identifiers (contact_id);

-- One conversation. `last_seq` numbers its events; rows are locked to take the next one.
CREATE TABLE interactions (
  id                   uuid        PRIMARY KEY,
  tenant_id            text        NOT NULL REFERENCES tenants (id),
  media                text        NOT NULL,
  subtype              text        NOT NULL,
  state                text        NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'done')),
  endpoint             text,
  contact_id           uuid        REFERENCES contacts (id),
  last_seq             bigint      NOT NULL DEFAULT 0,
  started_event_at     timestamptz,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now(),
  finished_at          timestamptz
);
CREATE INDEX interactions_tenant_open_idx ON interactions (tenant_id, created_at) WHERE state = 'open';
CREATE INDEX interactions_contact_idx ON interactions (contact_id, created_at);

-- A web chat session: the customer's side of a chat interaction.
CREATE TABLE chat_sessions (
  id              uuid        PRIMARY KEY,
  tenant_id       text        NOT NULL REFERENCES tenants (id),
  interaction_id  uuid        NOT NULL UNIQUE REFERENCES interactions (id),
  participant_id  uuid        NOT NULL,
  nickname        text        NOT NULL,
  first_name      text,
  last_name       text,
  email           text,
  phone           text,
  stream          text,
  user_data       jsonb       NOT NULL DEFAULT '{}',
  state           text        NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'ended')),
  created_at      timestamptz NOT NULL DEFAULT now(),
  ended_at        timestamptz
);

-- Messages of an interaction. A customer message is stored with seq NULL when the API accepts
-- it; the inbound processor numbers it (in arrival order) and writes its event.
CREATE TABLE messages (
  id                 uuid        PRIMARY KEY,
  received           bigint      GENERATED ALWAYS AS IDENTITY,
  tenant_id          text        NOT NULL,
  interaction_id     uuid        NOT NULL REFERENCES interactions (id),
  seq                bigint,
  direction          text        NOT NULL CHECK (direction IN ('inbound', 'outbound')),
  sender_type        text        NOT NULL CHECK (sender_type IN ('customer', 'agent', 'bot', 'system')),
  sender_id          text        NOT NULL,
  type               text        NOT NULL DEFAULT 'Text',
  text               text,
  client_message_id  text,
  created_at         timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT messages_interaction_seq_key UNIQUE (interaction_id, seq),
  CONSTRAINT messages_client_id_key UNIQUE (interaction_id, sender_id, client_message_id)
);
CREATE INDEX messages_unsequenced_idx ON messages (interaction_id, received) WHERE seq IS NULL;

-- The event log every socket notification and webhook comes from (design §6).
CREATE TABLE events (
  id              uuid        PRIMARY KEY,
  tenant_id       text        NOT NULL,
  interaction_id  uuid        NOT NULL REFERENCES interactions (id),
  seq             bigint      NOT NULL,
  type            text        NOT NULL,
  payload         jsonb       NOT NULL,
  occurred_at     timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT events_interaction_seq_key UNIQUE (interaction_id, seq)
);
CREATE INDEX events_tenant_time_idx ON events (tenant_id, occurred_at);

-- Agents working on an interaction (joined, not yet left).
CREATE TABLE interaction_agents (
  interaction_id  uuid        NOT NULL REFERENCES interactions (id),
  agent_id        uuid        NOT NULL REFERENCES agents (id),
  joined_at       timestamptz NOT NULL DEFAULT now(),
  left_at         timestamptz,
  PRIMARY KEY (interaction_id, agent_id)
);
CREATE INDEX interaction_agents_agent_idx ON interaction_agents (agent_id) WHERE left_at IS NULL;

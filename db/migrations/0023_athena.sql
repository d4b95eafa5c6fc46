-- The AI connector ("athena"): the customer messages the hub delivered to it, and what it made
-- of them. Athena runs on the hub's database or on one of its own (the same migrations), so its
-- tables name the tenant by its id without a foreign key to `tenants`.

CREATE TABLE athena_messages (
  tenant_id      text        NOT NULL,
  -- The hub's message id, and the webhook target (connector) that delivered it.
  message_id     uuid        NOT NULL,
  connector      text        NOT NULL,
  interaction_id uuid        NOT NULL,
  -- The hub's event and delivery ids, kept for tracing.
  event_id       text        NOT NULL,
  delivery_id    text,
  from_type      text        NOT NULL,
  text           text        NOT NULL,
  received_at    timestamptz NOT NULL DEFAULT now(),
  -- What the connector did: null until its worker ran.
  outcome        text        CHECK (outcome IN ('suggested', 'no-match', 'failed', 'bot-reply',
                                                'bot-fallback', 'handoff', 'skipped')),
  provider       text,
  intent         text,
  confidence     real,
  handled_at     timestamptz,
  PRIMARY KEY (tenant_id, message_id, connector)
);
CREATE INDEX athena_messages_interaction ON athena_messages (tenant_id, interaction_id, received_at);

-- A tenant's NLU providers: which one reads its conversations, and its settings (the
-- credentials sealed like every secret of the hub).
CREATE TABLE athena_providers (
  tenant_id     text        NOT NULL,
  name          text        NOT NULL CHECK (name ~ '^[A-Za-z0-9_-]{1,64}$'),
  provider      text        NOT NULL,
  url           text,
  data          jsonb       NOT NULL DEFAULT '{}',
  secret_sealed text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, name)
);

-- A tenant's knowledge articles (FAQ), searched with PostgreSQL full-text search.
CREATE TABLE athena_articles (
  tenant_id  text        NOT NULL,
  id         text        NOT NULL CHECK (id ~ '^[A-Za-z0-9_.-]{1,128}$'),
  title      text        NOT NULL,
  body       text        NOT NULL,
  url        text,
  language   regconfig   NOT NULL DEFAULT 'english',
  search     tsvector    GENERATED ALWAYS AS (
               setweight(to_tsvector(language, title), 'A') || setweight(to_tsvector(language, body), 'B')
             ) STORED,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX athena_articles_search ON athena_articles USING gin (search);

-- The bot's side of a conversation a bot answers: how many of the customer's last messages in
-- a row it did not understand (a handoff after `maxMisses`).
CREATE TABLE athena_bot_sessions (
  tenant_id      text        NOT NULL,
  interaction_id uuid        NOT NULL,
  turns          integer     NOT NULL DEFAULT 0,
  misses         integer     NOT NULL DEFAULT 0,
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, interaction_id)
);

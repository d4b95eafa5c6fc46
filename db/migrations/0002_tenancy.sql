-- Tenants, API keys, services and channels (design §4, §7; issue "Tenants, provisioning, API keys
-- and authorization"). Secrets are sealed by the application (AES-256-GCM, lib/secrets.ts): the
-- *_sealed columns never hold clear text. API keys are stored as SHA-256 hashes only.

CREATE TABLE tenants (
  id               text        PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'),
  name             text        NOT NULL,
  type             text        NOT NULL,
  backendurl       text,
  username         text,
  token_sealed     text,
  genesystenantid  integer,
  enabled          boolean     NOT NULL DEFAULT true,
  created_at       timestamptz NOT NULL DEFAULT now(),
  created_by       text        NOT NULL,
  updated_at       timestamptz NOT NULL DEFAULT now()
);

-- tenant_id NULL is a cluster key (the guide's `"tenant": "*"`).
CREATE TABLE api_keys (
  id           uuid        PRIMARY KEY,
  tenant_id    text        REFERENCES tenants (id),
  name         text        NOT NULL,
  permissions  text[]      NOT NULL CHECK (cardinality(permissions) > 0),
  enabled      boolean     NOT NULL DEFAULT true,
  revoked_at   timestamptz,
  expires_at   timestamptz,
  capacity     integer     NOT NULL DEFAULT 120 CHECK (capacity > 0),
  frequency    integer     NOT NULL DEFAULT 60 CHECK (frequency > 0),
  key_hash     bytea       NOT NULL UNIQUE,
  created_at   timestamptz NOT NULL DEFAULT now(),
  created_by   text        NOT NULL,
  updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, created_at);

-- The guide's NexusServices: `SMS`, `Async`, `mGageSMS`, `WebhookTransportTarget-<name>`, ...
CREATE TABLE services (
  tenant_id      text        NOT NULL REFERENCES tenants (id),
  name           text        NOT NULL,
  url            text,
  data           jsonb       NOT NULL DEFAULT '{}',
  secret_sealed  text,
  secret_key_id  text,
  version        integer     NOT NULL DEFAULT 1,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  updated_by     text        NOT NULL,
  PRIMARY KEY (tenant_id, name)
);

-- The guide's `chat.<name>` (SMS sender ids) and `cxc.<name>` (email domains) sections.
CREATE TABLE channels (
  tenant_id            text        NOT NULL REFERENCES tenants (id),
  name                 text        NOT NULL CHECK (name ~ '^(chat|cxc)\.[A-Za-z0-9_-]+$'),
  channel_id           text        NOT NULL,
  channel_type         text        NOT NULL,
  endpoint             text,
  interaction_subtype  text,
  interaction_type     text,
  media                text,
  cxc_only             boolean     NOT NULL DEFAULT false,
  provider             text,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, name),
  CONSTRAINT channels_tenant_channel_id_key UNIQUE (tenant_id, channel_id)
);

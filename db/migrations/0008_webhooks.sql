-- Webhooks (design §3, §6): targets, one delivery per (event, target), and every attempt.

-- Tenant-level operational events (a delivery exhausted, a target disabled) live in the same log
-- as interaction events, without an interaction or a seq.
ALTER TABLE events
  ALTER COLUMN interaction_id DROP NOT NULL,
  ALTER COLUMN seq DROP NOT NULL,
  ADD CONSTRAINT events_operational_check CHECK ((interaction_id IS NULL) = (seq IS NULL));

-- The delivery side of each `WebhookTransportTarget-<name>` service, written by the provisioning
-- API in the same transaction as the service.
CREATE TABLE webhook_targets (
  tenant_id              text        NOT NULL,
  name                   text        NOT NULL,
  -- The event types this target receives; NULL = every type.
  event_types            text[],
  enabled                boolean     NOT NULL DEFAULT true,
  disabled_at            timestamptz,
  disabled_reason        text,
  -- The first failed attempt since the last success (NULL while healthy).
  failing_since          timestamptz,
  last_success_at        timestamptz,
  -- The secret before the last rotation, valid (signatures sent with both) until previous_until.
  previous_secret_sealed text,
  previous_secret_key_id text,
  previous_until         timestamptz,
  created_at             timestamptz NOT NULL DEFAULT now(),
  updated_at             timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, name),
  FOREIGN KEY (tenant_id, name) REFERENCES services (tenant_id, name) ON DELETE CASCADE
);

-- One event for one target. Created by the fan-out trigger below in the transaction that writes
-- the event, so no event is ever skipped and none is fanned out twice (unique key). `dispatched`
-- turns true when a worker has recorded the delivery's work row and job.
CREATE TABLE webhook_deliveries (
  id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id       text        NOT NULL,
  target          text        NOT NULL,
  event_id        uuid        NOT NULL REFERENCES events (id),
  state           text        NOT NULL DEFAULT 'pending'
                              CHECK (state IN ('pending', 'delivered', 'failed')),
  -- Attempts in all, and in the current round (a replay starts a new round of the schedule).
  attempts        integer     NOT NULL DEFAULT 0,
  round_attempts  integer     NOT NULL DEFAULT 0,
  last_status     integer,
  last_error      text,
  next_attempt_at timestamptz,
  dispatched      boolean     NOT NULL DEFAULT false,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  finished_at     timestamptz,
  CONSTRAINT webhook_deliveries_event_target_key UNIQUE (event_id, target),
  FOREIGN KEY (tenant_id, target) REFERENCES webhook_targets (tenant_id, name) ON DELETE CASCADE
);
CREATE INDEX webhook_deliveries_undispatched_idx ON webhook_deliveries (id) WHERE NOT dispatched;
CREATE INDEX webhook_deliveries_target_idx ON webhook_deliveries (tenant_id, target, id);

CREATE TABLE webhook_attempts (
  delivery_id  bigint      NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
  attempt      integer     NOT NULL,
  started_at   timestamptz NOT NULL,
  duration_ms  integer     NOT NULL,
  status_code  integer,
  outcome      text        NOT NULL CHECK (outcome IN ('delivered', 'retry', 'failed', 'gone')),
  error        text,
  PRIMARY KEY (delivery_id, attempt)
);

-- The fan-out: every inserted event that a target's filter accepts becomes one delivery.
-- Operational events about a target are never sent to that target (a failing target would feed
-- itself).
CREATE FUNCTION webhook_fan_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO webhook_deliveries (tenant_id, target, event_id)
  SELECT e.tenant_id, t.name, e.id
  FROM new_events e
  JOIN webhook_targets t ON t.tenant_id = e.tenant_id
  WHERE t.enabled
    AND (t.event_types IS NULL OR e.type = ANY (t.event_types))
    AND (e.interaction_id IS NOT NULL OR e.payload->>'target' IS DISTINCT FROM t.name)
  ON CONFLICT DO NOTHING;
  RETURN NULL;
END;
$$;

CREATE TRIGGER events_webhook_fan_out
  AFTER INSERT ON events
  REFERENCING NEW TABLE AS new_events
  FOR EACH STATEMENT EXECUTE FUNCTION webhook_fan_out();

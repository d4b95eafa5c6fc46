-- Agent assist (docs/ai-connector.md): the suggestions an AI connector posts for customer
-- messages, and the fan-out rule that keeps them away from the connector.

-- One `assist.suggestion` event per (interaction, customer message, connector): the key that
-- makes a connector's retries answer the first event instead of appending another.
CREATE TABLE assist_suggestions (
  interaction_id uuid        NOT NULL REFERENCES interactions (id),
  message_id     uuid        NOT NULL REFERENCES messages (id),
  connector      text        NOT NULL,
  event_id       uuid        NOT NULL REFERENCES events (id),
  created_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (interaction_id, message_id, connector)
);

-- The fan-out of migration 0008, plus: an `assist.suggestion` is never delivered to the guide's
-- AI connector target, nor to the target of the connector that posted it (the connector would be
-- fed its own answers), whatever their event filters say. db/webhook-log.ts (`fanOutMissed`)
-- applies the same rule when a target is replayed.
CREATE OR REPLACE FUNCTION webhook_fan_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO webhook_deliveries (tenant_id, target, event_id)
  SELECT e.tenant_id, t.name, e.id
  FROM new_events e
  JOIN webhook_targets t ON t.tenant_id = e.tenant_id
  WHERE t.enabled
    AND (t.event_types IS NULL OR e.type = ANY (t.event_types))
    AND (e.interaction_id IS NOT NULL OR e.payload->>'target' IS DISTINCT FROM t.name)
    AND NOT (e.type = 'assist.suggestion'
             AND (t.name = 'WebhookTransportTarget-ai-connector'
                  OR t.name IS NOT DISTINCT FROM ('WebhookTransportTarget-' || (e.payload->>'connector'))))
  ON CONFLICT DO NOTHING;
  RETURN NULL;
END;
$$;

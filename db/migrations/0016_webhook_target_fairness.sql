-- Fair dispatch between webhook targets: the dispatcher hands each target at most a configured
-- number of first-attempt batches at a time, so a target with a large backlog (or one that never
-- answers) does not fill the queue ahead of the others. It needs, cheaply:
-- 1. the targets that have deliveries waiting, and each target's oldest waiting ones: the dispatch
--    queue carries the delivery's tenant and target, indexed;
-- 2. each target's batches still pending: a partial index over pending batch work rows only.

ALTER TABLE webhook_dispatch_queue ADD COLUMN tenant_id text, ADD COLUMN target text;

UPDATE webhook_dispatch_queue q SET tenant_id = d.tenant_id, target = d.target
FROM webhook_deliveries d WHERE d.id = q.delivery_id;
-- A queued id whose delivery is gone (its target was deleted) has nothing left to dispatch.
DELETE FROM webhook_dispatch_queue WHERE tenant_id IS NULL;

ALTER TABLE webhook_dispatch_queue ALTER COLUMN tenant_id SET NOT NULL,
                                   ALTER COLUMN target SET NOT NULL;
CREATE INDEX webhook_dispatch_queue_target_idx
  ON webhook_dispatch_queue (tenant_id, target, delivery_id);

CREATE OR REPLACE FUNCTION webhook_dispatch_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO webhook_dispatch_queue (delivery_id, tenant_id, target)
  SELECT id, tenant_id, target FROM new_deliveries;
  RETURN NULL;
END;
$$;

CREATE INDEX work_webhook_batches_pending_idx
  ON work (tenant_id, (payload->>'targetId'))
  WHERE queue = 'webhooks' AND state = 'pending' AND job_id LIKE 'webhooks.batch.%';

-- New deliveries wake the webhook dispatchers at once (NOTIFY, delivered at commit, one per
-- transaction however many statements send it), instead of waiting for their next pass; the
-- passes stay, for a dispatcher whose listening connection was down.
CREATE OR REPLACE FUNCTION webhook_dispatch_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO webhook_dispatch_queue (delivery_id, tenant_id, target)
  SELECT id, tenant_id, target FROM new_deliveries;
  IF EXISTS (SELECT 1 FROM new_deliveries) THEN
    PERFORM pg_notify('nexus_webhook_dispatch', '');
  END IF;
  RETURN NULL;
END;
$$;

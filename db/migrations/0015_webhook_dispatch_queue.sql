-- New deliveries wait for a dispatcher in a narrow table of their ids instead of behind a flag on
-- their row: claiming one deletes a small row, where setting the flag rewrote the delivery row
-- with all its index entries. A delivery row is then updated once per attempt, and with room left
-- on each page that update stays on the page without new index entries (HOT: none of the
-- columns it changes is indexed).

CREATE TABLE webhook_dispatch_queue (
  delivery_id bigint PRIMARY KEY
);

-- Every delivery, however it is created (the fan-out trigger, a replay of missed events), is queued
-- in its statement.
CREATE FUNCTION webhook_dispatch_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO webhook_dispatch_queue (delivery_id) SELECT id FROM new_deliveries;
  RETURN NULL;
END;
$$;

CREATE TRIGGER webhook_deliveries_dispatch_enqueue
  AFTER INSERT ON webhook_deliveries
  REFERENCING NEW TABLE AS new_deliveries
  FOR EACH STATEMENT EXECUTE FUNCTION webhook_dispatch_enqueue();

INSERT INTO webhook_dispatch_queue (delivery_id)
SELECT id FROM webhook_deliveries WHERE NOT dispatched;

DROP INDEX webhook_deliveries_undispatched_idx;
ALTER TABLE webhook_deliveries DROP COLUMN dispatched;
ALTER TABLE webhook_deliveries SET (fillfactor = 80);

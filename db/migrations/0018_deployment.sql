-- The deployment's identity: one row, created by the first process that starts on this database
-- (not here: a database cloned from a migrated template, as the tests do, must get an identity of
-- its own). Each process stamps its queue prefix in Redis with it and refuses to start on a prefix
-- another deployment stamped (two deployments on one prefix would take each other's jobs).

CREATE TABLE deployment (
  singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
  id         uuid        NOT NULL DEFAULT gen_random_uuid(),
  created_at timestamptz NOT NULL DEFAULT now()
);

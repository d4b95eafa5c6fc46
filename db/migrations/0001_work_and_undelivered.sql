-- The durable record of every job (design §2, "Postgres-first, then enqueue").
-- A row is written, state 'pending', in the same transaction as the work it stands for; the
-- BullMQ job id is its job_id; a processor ends it with a conditional update
-- (... WHERE state = 'pending'), so a duplicate run changes nothing; the sweeper re-enqueues
-- rows still pending whose job Redis no longer has.
CREATE TABLE work (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  queue         text        NOT NULL,
  job_id        text        NOT NULL,
  tenant_id     text,
  payload       jsonb       NOT NULL,
  state         text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
  attempts      integer     NOT NULL DEFAULT 0,
  first_attempt_at timestamptz,
  last_attempt_at  timestamptz,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  next_sweep_at timestamptz NOT NULL,
  finished_at   timestamptz,
  CONSTRAINT work_queue_job_id_key UNIQUE (queue, job_id)
);
CREATE INDEX work_pending_sweep_idx ON work (next_sweep_at) WHERE state = 'pending';

-- Jobs that exhausted their attempts or failed permanently (design §3, "Undelivered handling").
-- One row per job: a replayed job that fails again updates its row.
CREATE TABLE undelivered (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  queue            text        NOT NULL,
  job_id           text        NOT NULL,
  tenant_id        text,
  reason           text        NOT NULL,
  attempts         integer     NOT NULL,
  failures         integer     NOT NULL DEFAULT 1,
  first_attempt_at timestamptz,
  last_attempt_at  timestamptz NOT NULL,
  replayed_at      timestamptz,
  replays          integer     NOT NULL DEFAULT 0,
  created_at       timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT undelivered_queue_job_id_key UNIQUE (queue, job_id),
  CONSTRAINT undelivered_work_fkey FOREIGN KEY (queue, job_id) REFERENCES work (queue, job_id) ON DELETE CASCADE
);
CREATE INDEX undelivered_last_attempt_idx ON undelivered (last_attempt_at);
CREATE INDEX undelivered_tenant_idx ON undelivered (tenant_id, last_attempt_at);

-- How often a job's lock lapsed until BullMQ failed it as stalled out, for work the sweeper added
-- again. An outage of Redis stalls every active job once; a job that crashes or blocks its worker
-- stalls every time, and processors that count their attempts only when they finish never count
-- one. The sweeper stops re-adding work past a limit and records it undelivered instead.
ALTER TABLE work ADD COLUMN stalls integer NOT NULL DEFAULT 0;

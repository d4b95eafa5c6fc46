-- Failures carry a code from the error catalogue (docs/errors.md, "Failed work") beside their
-- human reason. Rows from before codes get the generic NEXUS_ERR_WORK_FAILED.
--
-- undelivered.code keeps that default: a writer without a code of its own records the generic
-- one, so every record has a catalogue code.
ALTER TABLE undelivered ADD COLUMN code text NOT NULL DEFAULT 'NEXUS_ERR_WORK_FAILED';

-- The interaction's undelivered flag and an SMS's (or a campaign record's) failed status carry
-- the code of their failure; NULL while there is none.
ALTER TABLE interactions ADD COLUMN undelivered_code text;
UPDATE interactions SET undelivered_code = 'NEXUS_ERR_WORK_FAILED' WHERE undelivered_at IS NOT NULL;

ALTER TABLE messages ADD COLUMN delivery_code text;
UPDATE messages SET delivery_code = 'NEXUS_ERR_WORK_FAILED' WHERE delivery_status = 'failed';

ALTER TABLE sms_campaign_records ADD COLUMN delivery_code text;
UPDATE sms_campaign_records SET delivery_code = 'NEXUS_ERR_WORK_FAILED'
WHERE delivery_status = 'failed';

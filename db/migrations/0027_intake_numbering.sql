-- Chat intake numbers a customer message when it commits (db/queries/intake.ts): the message, its
-- `message.created` event and the interaction's `last_seq` are written by one statement. That
-- statement reserves the numbers before its insert learns which messages were retries; should a
-- retry have been committed meanwhile (a duplicate client message id), the numbers would leave a
-- gap, so the statement asserts it did not happen and is rolled back whole if it did.
CREATE FUNCTION nexus_intake_assert(ok boolean) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT ok THEN
    RAISE EXCEPTION 'a numbered customer message was a retry committed meanwhile'
      USING ERRCODE = 'NX409';
  END IF;
  RETURN true;
END
$$;

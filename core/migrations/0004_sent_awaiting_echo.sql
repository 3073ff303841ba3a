-- A pushed change stays in the outbox until it comes back from the relay's log (its echo), not
-- only until the relay says it stored it: a relay that acknowledges and drops, or answers
-- "duplicate" for something it never kept, is caught and the change is sent again.
-- `acked_seq` is the sequence number the relay acknowledged it at; NULL while not yet pushed.
ALTER TABLE outbox ADD COLUMN acked_seq INTEGER;
CREATE INDEX outbox_unsent ON outbox (seq) WHERE acked_seq IS NULL;

-- 0006 (numbered after 0005 of the statistics/retention work): fewer pages written per save.
-- Every local save inserts one outbox row in its own durable transaction; each B-tree the insert
-- touches is one more 4 KiB WAL frame fsynced per save. Three of them carried nothing needed:
-- * AUTOINCREMENT rewrote the `sqlite_sequence` page on every insert. A plain INTEGER PRIMARY KEY
--   still numbers rows in insertion order; a number can come back only after the newest row was
--   deleted, and acknowledgements name the envelope id as well as the number, so a reused
--   number is never mistaken for the row it replaced.
-- * `outbox_unsent` indexed `seq` for unsent rows, which the table's own rowid order already
--   gives: unsent rows are read oldest first, and the outbox is short once synced.
-- * The UNIQUE index on `envelope_id`: ids are 16 random bytes drawn on this device, and the one
--   lookup by id (a returning echo) also knows the record, so it goes through `outbox_doc`.
-- And one column, so a save writes about 1 KiB less: a new record's first entry is the whole saved
-- document, which the same transaction stores in `documents`. `body_is_document = 1` says the
-- entry's changes are that stored document (the entry's own `body` is empty); before the
-- document is overwritten, the entry gets its own sealed copy and the flag goes back to 0.
-- The rows are copied as they are (numbers, acknowledgement state, sealed bodies).
CREATE TABLE outbox_0006 (
    seq         INTEGER PRIMARY KEY,
    envelope_id BLOB NOT NULL,
    doc_id      BLOB NOT NULL,
    kind        INTEGER NOT NULL,
    body        BLOB NOT NULL,
    tombstone   INTEGER NOT NULL DEFAULT 0,
    acked_seq   INTEGER,
    body_is_document INTEGER NOT NULL DEFAULT 0
);
INSERT INTO outbox_0006 (seq, envelope_id, doc_id, kind, body, tombstone, acked_seq)
    SELECT seq, envelope_id, doc_id, kind, body, tombstone, acked_seq FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_0006 RENAME TO outbox;
CREATE INDEX outbox_doc ON outbox (doc_id);

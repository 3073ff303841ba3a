-- 0005: envelopes in binary columns (issue 18). Until now `log.body` held each envelope's JSON,
-- with base64url ciphertext, nonce and signature, and the ids, kind and covers a second time; now
-- each field of the envelope has a column of its own, the byte strings raw, and pulls serialize
-- the envelope from them (server/src/storage/log_row.rs). Every field of the envelope is kept, so
-- a pull hands out the same envelope, signature and all.
--
-- SQLite cannot decode base64url, so this file only makes the new table; the relay then moves
-- every row of `log_json` into it, decoding and checking each body, and drops `log_json`, all in
-- this migration's transaction (`convert_json_log` in server/src/storage/sqlite.rs). A body that
-- does not decode, or disagrees with its row, fails the migration and leaves the file at 4.
--
-- The log no longer has its own UNIQUE (team, envelope_id): `envelope_ids`, which outlives
-- compaction, is the one place a duplicate is recognised (its primary key refuses a second row),
-- and the index cost about 45 bytes per envelope.

DROP INDEX log_by_doc;
ALTER TABLE log RENAME TO log_json;

CREATE TABLE log (
    team        BLOB NOT NULL REFERENCES teams (id),
    seq         INTEGER NOT NULL,
    doc         BLOB NOT NULL CHECK (length(doc) = 16),
    envelope_id BLOB NOT NULL CHECK (length(envelope_id) = 16),
    kind        INTEGER NOT NULL CHECK (kind IN (1, 2, 3)),
    covers      INTEGER NOT NULL,
    v           INTEGER NOT NULL,
    epoch       INTEGER NOT NULL CHECK (epoch BETWEEN 0 AND 4294967295),
    author      BLOB NOT NULL CHECK (length(author) = 16),
    nonce       BLOB NOT NULL CHECK (length(nonce) = 12),
    sig         BLOB NOT NULL CHECK (length(sig) = 64),
    -- Last: SQLite reads a row's columns front to back, and the ciphertext is the long one.
    ciphertext  BLOB NOT NULL,
    PRIMARY KEY (team, seq)
);
CREATE INDEX log_by_doc ON log (team, doc, seq);

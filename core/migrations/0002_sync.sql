-- 0002: sync state. The cursor advances in the same transaction that stores what was pulled.
CREATE TABLE sync_state (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
-- Envelopes that failed verification or decryption: kept (sealed) for the report, never applied.
CREATE TABLE quarantine (
    seq      INTEGER PRIMARY KEY,
    doc_id   BLOB NOT NULL,
    reason   TEXT NOT NULL,
    at       INTEGER NOT NULL,
    body     BLOB NOT NULL
);
CREATE INDEX outbox_doc ON outbox (doc_id);
-- How many change envelopes each record has gathered since its last snapshot (compaction trigger).
CREATE TABLE doc_activity (
    doc_id         BLOB PRIMARY KEY,
    since_snapshot INTEGER NOT NULL
);

-- 0001: the encrypted record store.
-- Every BLOB named body/value of a record is AEAD-sealed (see crypto.rs); ids are random 16 bytes.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
-- One Automerge document per record (Automerge::save, sealed).
CREATE TABLE documents (
    id   BLOB PRIMARY KEY,
    kind INTEGER NOT NULL,
    body BLOB NOT NULL
);
-- The materialized fields of each record, for listing and filtering without Automerge.
CREATE TABLE projections (
    id   BLOB PRIMARY KEY,
    kind INTEGER NOT NULL,
    body BLOB NOT NULL
);
-- Local changes not yet acknowledged by the relay, written in the same transaction as the change.
CREATE TABLE outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    envelope_id BLOB NOT NULL UNIQUE,
    doc_id      BLOB NOT NULL,
    kind        INTEGER NOT NULL,
    body        BLOB NOT NULL
);
-- Device identity, team keys and other secrets, sealed.
CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    body BLOB NOT NULL
);

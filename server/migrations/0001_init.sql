-- 0001: the relay's first schema.
-- Ids are 16-byte BLOBs; every envelope body is the JSON the author pushed, re-serialized.

CREATE TABLE teams (
    id         BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    -- Highest sequence number given out in this team's log; the next entry gets head + 1.
    head       INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL
);

CREATE TABLE devices (
    team     BLOB NOT NULL REFERENCES teams (id),
    id       BLOB NOT NULL CHECK (length(id) = 16),
    sign_pk  BLOB NOT NULL CHECK (length(sign_pk) = 32),
    kx_pk    BLOB NOT NULL CHECK (length(kx_pk) = 32),
    role     TEXT NOT NULL CHECK (role IN ('worker', 'lead')),
    revoked  INTEGER NOT NULL DEFAULT 0,
    added_ms INTEGER NOT NULL,
    PRIMARY KEY (team, id)
);
CREATE INDEX devices_by_id ON devices (id);

-- The team's append-only log (compaction and erasure delete rows; seq never goes back).
CREATE TABLE log (
    team        BLOB NOT NULL REFERENCES teams (id),
    seq         INTEGER NOT NULL,
    doc         BLOB NOT NULL,
    envelope_id BLOB NOT NULL,
    kind        INTEGER NOT NULL CHECK (kind IN (1, 2, 3)),
    covers      INTEGER NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (team, seq),
    UNIQUE (team, envelope_id)
);
CREATE INDEX log_by_doc ON log (team, doc, seq);

-- Every envelope id a team's log ever accepted, with the seq it got. It outlives compaction so a
-- late retry of a compacted envelope is still recognised as a duplicate and not appended again.
CREATE TABLE envelope_ids (
    team BLOB NOT NULL,
    id   BLOB NOT NULL,
    seq  INTEGER NOT NULL,
    PRIMARY KEY (team, id)
) WITHOUT ROWID;

CREATE TABLE bundles (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    team       BLOB NOT NULL REFERENCES teams (id),
    sender     BLOB NOT NULL,
    recipient  BLOB NOT NULL,
    blob       BLOB NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX bundles_by_recipient ON bundles (team, recipient, id);

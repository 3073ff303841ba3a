-- 0002: one-time invites. The relay holds the bundle sealed under a key derived from the invite
-- secret (which it never sees) and the HMAC key that authenticates the redemption.
CREATE TABLE invites (
    id          BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    team        BLOB NOT NULL REFERENCES teams (id),
    auth_key    BLOB NOT NULL CHECK (length(auth_key) = 32),
    role        TEXT NOT NULL CHECK (role IN ('worker', 'lead')),
    expires_ms  INTEGER NOT NULL,
    blob        BLOB NOT NULL,
    created_by  BLOB NOT NULL,
    redeemed_by BLOB,
    created_ms  INTEGER NOT NULL
);
CREATE INDEX invites_by_team ON invites (team, created_ms);
-- Erased records: later pushes for them are acknowledged but never stored.
CREATE TABLE tombstones (
    team BLOB NOT NULL,
    doc  BLOB NOT NULL,
    seq  INTEGER NOT NULL,
    PRIMARY KEY (team, doc)
) WITHOUT ROWID;

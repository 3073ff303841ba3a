-- 0001: the relay's schema on PostgreSQL, the same tables as the SQLite migrations 0001-0003
-- (ADR 0011). Ids are 16-byte bytea; every envelope body is the JSON the relay wrote when it
-- accepted the envelope, handed out by pulls as stored (text, not jsonb: jsonb would reorder keys
-- and re-encode, and pulls would no longer be byte-identical to the SQLite backend's).

CREATE TABLE teams (
    id         bytea PRIMARY KEY CHECK (length(id) = 16),
    -- Highest sequence number given out in this team's log; the next entry gets head + 1. Every
    -- append locks this row (SELECT ... FOR UPDATE), which is what keeps the numbers gap-free and
    -- strictly increasing across relay instances (never a SEQUENCE: those have gaps).
    head       bigint NOT NULL DEFAULT 0,
    created_ms bigint NOT NULL
);

CREATE TABLE devices (
    team     bytea NOT NULL REFERENCES teams (id),
    id       bytea NOT NULL CHECK (length(id) = 16),
    sign_pk  bytea NOT NULL CHECK (length(sign_pk) = 32),
    kx_pk    bytea NOT NULL CHECK (length(kx_pk) = 32),
    role     text NOT NULL CHECK (role IN ('worker', 'lead')),
    revoked  boolean NOT NULL DEFAULT false,
    added_ms bigint NOT NULL,
    -- Registration order for list_devices (added_ms ties inside one millisecond).
    added    bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (team, id)
);
CREATE INDEX devices_by_id ON devices (id, added_ms, added);

-- The team's append-only log (compaction and erasure delete rows; seq never goes back).
CREATE TABLE log (
    team        bytea NOT NULL REFERENCES teams (id),
    seq         bigint NOT NULL,
    doc         bytea NOT NULL,
    envelope_id bytea NOT NULL,
    kind        smallint NOT NULL CHECK (kind IN (1, 2, 3)),
    covers      bigint NOT NULL,
    body        text NOT NULL,
    PRIMARY KEY (team, seq),
    UNIQUE (team, envelope_id)
);
CREATE INDEX log_by_doc ON log (team, doc, seq);

-- Every envelope id a team's log ever accepted, with the seq it got; outlives compaction.
CREATE TABLE envelope_ids (
    team bytea NOT NULL,
    id   bytea NOT NULL,
    seq  bigint NOT NULL,
    PRIMARY KEY (team, id)
);

-- Erased records: later pushes for them are acknowledged but never stored.
CREATE TABLE tombstones (
    team bytea NOT NULL,
    doc  bytea NOT NULL,
    seq  bigint NOT NULL,
    PRIMARY KEY (team, doc)
);

CREATE TABLE bundles (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    team       bytea NOT NULL REFERENCES teams (id),
    sender     bytea NOT NULL,
    recipient  bytea NOT NULL,
    blob       bytea NOT NULL,
    created_ms bigint NOT NULL
);
CREATE INDEX bundles_by_recipient ON bundles (team, recipient, id);

-- One-time invites (see the SQLite migrations 0002 and 0003).
CREATE TABLE invites (
    id          bytea PRIMARY KEY CHECK (length(id) = 16),
    team        bytea NOT NULL REFERENCES teams (id),
    auth_key    bytea NOT NULL CHECK (length(auth_key) = 32),
    role        text NOT NULL CHECK (role IN ('worker', 'lead')),
    expires_ms  bigint NOT NULL,
    blob        bytea NOT NULL,
    created_by  bytea NOT NULL,
    redeemed_by bytea,
    confirm     bytea CHECK (confirm IS NULL OR length(confirm) = 32),
    created_ms  bigint NOT NULL
);
CREATE INDEX invites_by_team ON invites (team, created_ms);
CREATE INDEX invites_open_by_creator ON invites (team, created_by) WHERE redeemed_by IS NULL;

-- Request nonces seen by any relay instance within the clock window, so a request replayed to
-- another instance is refused too. Pruned by age (ts_ms) beyond the window.
CREATE TABLE nonces (
    device bytea NOT NULL,
    nonce  bytea NOT NULL,
    ts_ms  bigint NOT NULL,
    PRIMARY KEY (device, nonce)
);
CREATE INDEX nonces_by_age ON nonces (ts_ms);

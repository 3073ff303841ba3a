-- 0006: the log keyed by one integer, and small numbers for teams and authors (issue 18: the relay's
-- file at most 1.3 times the ciphertext it holds; docs/adr/0012-relay-log-positions.md).
--
-- Until now every log row carried its team's 16-byte id, and SQLite kept three b-trees per
-- envelope besides the log itself: the `(team, seq)` primary key (a separate index, since the
-- log was a rowid table), `log_by_doc (team, doc, seq)` and `envelope_ids (team, id)`, each with
-- the 16-byte team id again. Now:
--
-- * each team has a number, `teams.n` (1, 2, ... in order of creation; teams are never deleted,
--   so a number is never given out twice);
-- * a log entry's key is its position `pos = n * 2^40 + seq`, the table's rowid: the rows of one
--   team lie together in seq order, a pull is a range of rowids, and no separate index is needed
--   for it. `team` and `seq` are virtual columns computed from `pos` (stored nowhere), for
--   readers of the file; 2^40 seqs per team and 2^23 - 1 teams are the limits;
-- * `log_by_doc` is on the first 8 bytes of `doc` alone: SQLite appends the rowid, so a team's
--   entries of a record are one range of it, and the queries compare the whole `doc` on the row
--   (record ids are random, so another record with the same first 8 bytes is rare, and costs
--   only a row read); `envelope_ids` names the team by its number;
-- * a log row names its author by a number too, `authors.n`: a relay-wide list of the device ids
--   that authored an envelope, each once (rows are never deleted, so a number always names the
--   same device). A team has a few dozen devices and tens of thousands of envelopes.
--
-- The seq of every entry, the head of every team and every envelope id stay as they were, so
-- clients' cursors and retries mean what they meant. The relay's migration step then checks that
-- every row moved (`check_log_positions` in server/src/storage/sqlite.rs) and drops the old
-- tables; after the migration the relay rebuilds the file with VACUUM in 16 KiB pages
-- (`SqliteStorage::open`). The relay runs this with foreign keys off, SQLite's documented way to
-- rebuild a table other tables refer to (`teams`), and checks them before the commit.

CREATE TABLE teams_v6 (
    n          INTEGER PRIMARY KEY CHECK (n BETWEEN 1 AND 8388607),
    id         BLOB NOT NULL UNIQUE CHECK (length(id) = 16),
    -- Highest sequence number given out in this team's log; the next entry gets head + 1.
    head       INTEGER NOT NULL DEFAULT 0 CHECK (head BETWEEN 0 AND 1099511627775),
    created_ms INTEGER NOT NULL
);
INSERT INTO teams_v6 (id, head, created_ms)
SELECT id, head, created_ms FROM teams ORDER BY created_ms, rowid;
DROP TABLE teams;
ALTER TABLE teams_v6 RENAME TO teams;

CREATE TABLE authors (
    n  INTEGER PRIMARY KEY,
    id BLOB NOT NULL UNIQUE CHECK (length(id) = 16)
);
INSERT INTO authors (id) SELECT author FROM log GROUP BY author ORDER BY min(rowid);

DROP INDEX log_by_doc;
ALTER TABLE log RENAME TO log_v5;
CREATE TABLE log (
    -- teams.n * 2^40 + seq.
    pos         INTEGER PRIMARY KEY,
    doc         BLOB NOT NULL CHECK (length(doc) = 16),
    envelope_id BLOB NOT NULL CHECK (length(envelope_id) = 16),
    kind        INTEGER NOT NULL CHECK (kind IN (1, 2, 3)),
    covers      INTEGER NOT NULL,
    v           INTEGER NOT NULL,
    epoch       INTEGER NOT NULL CHECK (epoch BETWEEN 0 AND 4294967295),
    -- authors.n.
    author      INTEGER NOT NULL REFERENCES authors (n),
    nonce       BLOB NOT NULL CHECK (length(nonce) = 12),
    sig         BLOB NOT NULL CHECK (length(sig) = 64),
    -- The long one, last of the stored columns: SQLite reads a row's columns front to back.
    ciphertext  BLOB NOT NULL,
    -- Computed from `pos` when read, never stored: teams.n and the entry's seq.
    team        INTEGER GENERATED ALWAYS AS (pos >> 40) VIRTUAL,
    seq         INTEGER GENERATED ALWAYS AS (pos & 1099511627775) VIRTUAL
);
INSERT INTO log (pos, doc, envelope_id, kind, covers, v, epoch, author, nonce, sig, ciphertext)
SELECT t.n * 1099511627776 + l.seq, l.doc, l.envelope_id, l.kind, l.covers, l.v, l.epoch,
       a.n, l.nonce, l.sig, l.ciphertext
FROM log_v5 l JOIN teams t ON t.id = l.team JOIN authors a ON a.id = l.author
WHERE l.seq BETWEEN 1 AND 1099511627775
ORDER BY t.n, l.seq;
CREATE INDEX log_by_doc ON log (substr(doc, 1, 8));

-- Every envelope id a team's log ever accepted, with the seq it got. It outlives compaction so a
-- late retry of a compacted envelope is still recognised as a duplicate and not appended again.
ALTER TABLE envelope_ids RENAME TO envelope_ids_v5;
CREATE TABLE envelope_ids (
    -- teams.n.
    team INTEGER NOT NULL,
    id   BLOB NOT NULL,
    seq  INTEGER NOT NULL,
    PRIMARY KEY (team, id)
) WITHOUT ROWID;
INSERT INTO envelope_ids (team, id, seq)
SELECT t.n, e.id, e.seq FROM envelope_ids_v5 e JOIN teams t ON t.id = e.team
ORDER BY t.n, e.id;

-- Migration 3: envelopes in binary columns (issue 18; the SQLite migration 0005 does the same).
-- Until now `log.body` held each envelope's JSON, with base64url ciphertext, nonce and signature;
-- now each field of the envelope has a column of its own, the byte strings raw (bytea), and
-- pulls serialize the envelope from them (server/src/storage/log_row.rs).
--
-- The rows move into a new table rather than being updated in place: an UPDATE of every row
-- would leave the old versions behind as dead tuples until a VACUUM FULL, twice the table. JSON is
-- parsed by PostgreSQL (`body::json`), base64url is made base64 (`translate` and padding) for
-- `decode`. A body that does not parse, or that disagrees with its row's team, doc, id, kind or
-- covers, stops the migration, and its transaction leaves the database at version 2.
--
-- The log no longer has its own UNIQUE (team, envelope_id): `envelope_ids`, which outlives
-- compaction, is the one place a duplicate is recognised.

CREATE OR REPLACE FUNCTION pg_temp.b64url(s text) RETURNS bytea LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT decode(rpad(translate(s, '-_', '+/'), (length(s) + 3) / 4 * 4, '='), 'base64')
$$;

CREATE TABLE log_binary (
    team        bytea NOT NULL REFERENCES teams (id),
    seq         bigint NOT NULL,
    doc         bytea NOT NULL CHECK (length(doc) = 16),
    envelope_id bytea NOT NULL CHECK (length(envelope_id) = 16),
    kind        smallint NOT NULL CHECK (kind IN (1, 2, 3)),
    covers      bigint NOT NULL,
    v           smallint NOT NULL,
    epoch       bigint NOT NULL CHECK (epoch BETWEEN 0 AND 4294967295),
    author      bytea NOT NULL CHECK (length(author) = 16),
    nonce       bytea NOT NULL CHECK (length(nonce) = 12),
    sig         bytea NOT NULL CHECK (length(sig) = 64),
    ciphertext  bytea NOT NULL,
    PRIMARY KEY (team, seq)
);

DO $$
DECLARE
    bad bigint;
BEGIN
    SELECT min(seq) INTO bad FROM (SELECT seq, team, doc, envelope_id, kind, covers, body::json AS j FROM log) l
    WHERE (j->>'team') IS DISTINCT FROM encode(team, 'hex')
       OR (j->>'doc') IS DISTINCT FROM encode(doc, 'hex')
       OR (j->>'id') IS DISTINCT FROM encode(envelope_id, 'hex')
       OR (j->>'kind') IS DISTINCT FROM (ARRAY['change', 'snapshot', 'tombstone'])[kind]
       OR (j->>'covers')::bigint IS DISTINCT FROM covers;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'log entry % does not match its row''s team, doc, id, kind or covers', bad;
    END IF;
END
$$;

INSERT INTO log_binary (team, seq, doc, envelope_id, kind, covers, v, epoch, author, nonce, sig, ciphertext)
SELECT team, seq, doc, envelope_id, kind, covers,
       (j->>'v')::smallint,
       (j->>'epoch')::bigint,
       decode(j->>'author', 'hex'),
       pg_temp.b64url(j->>'nonce'),
       pg_temp.b64url(j->>'sig'),
       pg_temp.b64url(j->>'ciphertext')
FROM (SELECT team, seq, doc, envelope_id, kind, covers, body::json AS j FROM log) l;

DROP TABLE log;
ALTER TABLE log_binary RENAME TO log;
ALTER TABLE log RENAME CONSTRAINT log_binary_pkey TO log_pkey;
ALTER TABLE log RENAME CONSTRAINT log_binary_team_fkey TO log_team_fkey;
CREATE INDEX log_by_doc ON log (team, doc, seq);
DROP FUNCTION pg_temp.b64url(text);

-- Migration 2: the per-sender mailbox quota (see the SQLite migration 0004) counts the bundles a
-- device has waiting over all recipients; this index keeps that count off a table scan.
CREATE INDEX bundles_by_sender ON bundles (team, sender);

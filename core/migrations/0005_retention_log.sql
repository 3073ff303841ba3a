-- The audit trail of retention (issue 14): one row per run of a lead's device that erased
-- contacts past their retention period. Counts and record ids only, never content: what was
-- erased stays erased, and the log says when, by which device, why (automatic on the daily sync
-- or after a lead confirmed) and how many of each class.
CREATE TABLE retention_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    device TEXT NOT NULL,
    trigger TEXT NOT NULL,
    standard INTEGER NOT NULL,
    safeguarding INTEGER NOT NULL,
    short INTEGER NOT NULL,
    -- The erased record ids, as a JSON array of strings.
    records TEXT NOT NULL
);

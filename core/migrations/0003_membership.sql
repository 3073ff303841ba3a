-- 0003: erasure and tombstones.
-- Records a lead erased (GDPR Art. 17): late changes for them are ignored, never stored again.
CREATE TABLE erased (
    doc_id BLOB PRIMARY KEY,
    at     INTEGER NOT NULL
);
-- An outbox entry is either Automerge changes (0) or an erasure tombstone (1).
ALTER TABLE outbox ADD COLUMN tombstone INTEGER NOT NULL DEFAULT 0;

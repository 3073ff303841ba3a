-- 0007: smaller records (issue 18).
-- * Documents are stored deflated against a dictionary of the documents' map keys
--   (core/src/store/document_format.rs); the saved Automerge bytes come back exactly.
-- * Contact projections are in format 2 (core/src/store/projection_format.rs): without the record
--   id a second time, the author as 16 bytes, the date and time as numbers, and the note deflated
--   against a dictionary of German field-note words.
-- Both are sealed, so SQL cannot rewrite them. This file only leaves a mark; the store then opens,
-- re-encodes and reseals every document and contact projection in this migration's transaction
-- (`compact_records` in core/src/store/compaction.rs) and removes the mark, and after the commit
-- runs VACUUM so the file shrinks. A projection that does not decode is rebuilt from its
-- document, as at every load.
INSERT INTO meta (key, value) VALUES ('compact_records', x'01')
    ON CONFLICT (key) DO UPDATE SET value = excluded.value;

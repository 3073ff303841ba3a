-- 0003: enrolment the relay cannot forge, and invites that end with their creator.
-- `confirm` is the joining device's HMAC under a key derived from the invite secret, which the
-- relay never holds: stored as posted at redemption (NULL until then) and handed to leads with the
-- invite list, so the lead, not the relay, decides whether the redeemer knew the secret.
ALTER TABLE invites ADD COLUMN confirm BLOB CHECK (confirm IS NULL OR length(confirm) = 32);
-- Revoking a device deletes the open invites it created, in the same transaction; this finds them.
CREATE INDEX invites_open_by_creator ON invites (team, created_by) WHERE redeemed_by IS NULL;
-- Before this version a revoked device's open invites stayed redeemable; they go now.
DELETE FROM invites
WHERE redeemed_by IS NULL
  AND EXISTS (
      SELECT 1 FROM devices d
      WHERE d.team = invites.team AND d.id = invites.created_by AND d.revoked = 1
  );

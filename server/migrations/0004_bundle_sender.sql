-- Mailbox quotas (issue 13): the bundles one device has waiting, over all recipients, are counted
-- on every post.
CREATE INDEX bundles_by_sender ON bundles (team, sender);

-- Operations (issue 6): token scopes, device removal, journal listing.

-- Tokens made before scopes existed could do everything: they stay admin.
ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'admin';

-- A removed device, so every instance drops it from its registry (by the same revision as device changes).
CREATE TABLE device_deletions (
    sn         TEXT NOT NULL,
    revision   INTEGER NOT NULL,
    deleted_at INTEGER NOT NULL
);
CREATE INDEX device_deletions_revision ON device_deletions (revision);

-- Journal listing by arrival time.
CREATE INDEX journal_received ON journal (received_at);

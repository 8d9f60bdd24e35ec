-- Leases (issue 10): a time-limited claim of one instance (the holder) on a named job: `sink:<name>` (draining a
-- sink), `pull:<SN>` (pulling a terminal). SQLite serves one instance, so a lease here only ever changes hands
-- between runs; the table exists so both stores keep one contract. Times: unix milliseconds (UTC).
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    acquired_at INTEGER NOT NULL,           -- when this holder took it (kept across renewals)
    expires_at  INTEGER NOT NULL,           -- free for anyone from this instant on
    generation  INTEGER NOT NULL DEFAULT 1  -- +1 each time the lease changes hands (a fencing number)
) WITHOUT ROWID;

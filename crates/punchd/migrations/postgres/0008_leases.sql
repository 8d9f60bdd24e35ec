-- Leases (issue 10): a time-limited claim of one punchd instance (the holder) on a named job: `sink:<name>`
-- (draining a sink), `pull:<SN>` (pulling a terminal). An instance takes a lease that is free or expired with one
-- `INSERT … ON CONFLICT … DO UPDATE … WHERE expires_at <= now` (store/postgres/leases.rs), renews it while it works
-- and releases it when it stops; if it dies, another instance takes the lease once it expires.
CREATE TABLE leases (
    name        text PRIMARY KEY,
    holder      text NOT NULL,
    acquired_at timestamptz NOT NULL,          -- when this holder took it (kept across renewals)
    expires_at  timestamptz NOT NULL,          -- free for anyone from this instant on
    generation  bigint NOT NULL DEFAULT 1      -- +1 each time the lease changes hands (a fencing number)
);

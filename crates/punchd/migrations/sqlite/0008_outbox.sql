-- The outbox and the sinks it feeds (issue 8). Times: unix milliseconds (UTC) unless named otherwise.

-- One event per stored punch, written in the same transaction as the punch (store/sqlite.rs write_batch_on), but
-- only while at least one sink exists; a sink added later with a start date, and a replay from a date, fill in
-- the events of older punches (backfill). Event ids only grow; a sink reads them in id order.
CREATE TABLE outbox (
    id          INTEGER PRIMARY KEY,
    punch_id    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
-- One event per punch, ever: new punches append at the right edge (punch ids only grow).
CREATE UNIQUE INDEX outbox_punch ON outbox (punch_id);

-- A destination for check-ins: webhook, nats or frappe.
CREATE TABLE sinks (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    kind          TEXT NOT NULL,            -- webhook | nats | frappe
    config        TEXT NOT NULL,            -- JSON of the kind's settings (secrets included: protect the file)
    since_utc     INTEGER,                  -- unix seconds: only punches from this instant (NULL = all taken)
    cursor        INTEGER NOT NULL DEFAULT 0,  -- highest outbox id taken into deliveries
    paused        INTEGER NOT NULL DEFAULT 0,
    pause_reason  TEXT,                     -- set when punchd paused it (a configuration error)
    failing_since INTEGER,                  -- the first failure of the current run of failures
    last_error    TEXT,
    created_at    INTEGER NOT NULL
);

-- Per sink, per event: where its delivery stands. Rows are created when the worker takes events past its cursor.
CREATE TABLE deliveries (
    sink_id         INTEGER NOT NULL,
    event_id        INTEGER NOT NULL,
    status          TEXT NOT NULL,          -- pending | delivered | parked
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    park_kind       TEXT,                   -- unmapped | rejected | gave-up (when parked)
    remote_ref      TEXT,                   -- what the sink called it (Frappe doc name, stream sequence)
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (sink_id, event_id)
) WITHOUT ROWID;
CREATE INDEX deliveries_status ON deliveries (sink_id, status, event_id);

-- Operations, sources and the outbox on PostgreSQL (the SQLite migrations 0005, 0007 and 0008; issue 10).
-- Instants are timestamptz (UTC), settings jsonb, ids bigserial.

-- Operations (issue 6) -----------------------------------------------------------------------------------------

-- A removed device, so every instance drops it from its registry (by the same revision as device changes).
CREATE TABLE device_deletions (
    sn         text NOT NULL,
    revision   bigint NOT NULL,
    deleted_at timestamptz NOT NULL
);
CREATE INDEX device_deletions_revision ON device_deletions (revision);

-- Journal listing by arrival time.
CREATE INDEX IF NOT EXISTS journal_received ON journal (received_at);

-- Sources other than terminals (issue 9) -----------------------------------------------------------------------

CREATE TABLE sources (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL UNIQUE,
    kind            text NOT NULL,                  -- webhook | import | biotime
    token_hash      text UNIQUE,                    -- webhook: sha256 hex of its token
    secret          text,                           -- biotime: the API password (needed in clear to log in)
    time_zone       text,                           -- IANA zone for naive times; NULL = configured default
    settings        jsonb NOT NULL DEFAULT '{}',    -- kind-specific
    enabled         boolean NOT NULL DEFAULT true,
    cursor          text,                           -- kind-specific position (BioTime: upload_time and id)
    created_at      timestamptz NOT NULL,
    last_run_at     timestamptz,
    last_success_at timestamptz,
    last_error      text,                           -- NULL after a success
    last_error_at   timestamptz,
    n_runs          bigint NOT NULL DEFAULT 0,
    n_stored        bigint NOT NULL DEFAULT 0,
    n_duplicate     bigint NOT NULL DEFAULT 0,
    n_rejected      bigint NOT NULL DEFAULT 0
);

-- The outbox and the sinks it feeds (issue 8) ------------------------------------------------------------------

-- One event per stored punch, written in the punch's transaction while at least one sink exists.
--
-- Why `xid`: on PostgreSQL several transactions write at once (a pool, several instances), so event ids are NOT
-- committed in id order: id 11 may be visible while id 10 is still being written. A sink that kept "the highest id
-- taken" as its cursor would skip id 10 for ever. Each event therefore records the transaction that wrote it, and
-- a sink takes events in (xid, id) order only below the oldest transaction still running
-- (`pg_snapshot_xmin(pg_current_snapshot())`): everything below it has committed or rolled back, and every
-- transaction that commits later has a larger xid than the cursor (store/postgres/outbox.rs). The xid is the
-- 64-bit `xid8` (no wraparound), stored as bigint.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    punch_id    bigint NOT NULL,
    created_at  timestamptz NOT NULL,
    xid         bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint)
);
CREATE UNIQUE INDEX outbox_punch ON outbox (punch_id);
CREATE INDEX outbox_xid ON outbox (xid, id);

-- A destination for check-ins: webhook, nats or frappe.
CREATE TABLE sinks (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    kind          text NOT NULL,                -- webhook | nats | frappe
    config        jsonb NOT NULL,               -- the kind's settings (secrets included: protect the database)
    since_utc     timestamptz,                  -- only punches from this instant (whole seconds; NULL = all taken)
    cursor_xid    bigint NOT NULL DEFAULT 0,    -- the last event taken into deliveries, as (xid, id)
    cursor_id     bigint NOT NULL DEFAULT 0,
    -- A sink made without a start date delivers the punches stored from its creation on: the events of every
    -- transaction this snapshot (taken at creation) does not see. NULL: no such limit (a start date instead).
    created_snapshot pg_snapshot,
    paused        boolean NOT NULL DEFAULT false,
    pause_reason  text,                         -- set when punchd paused it (a configuration error)
    failing_since timestamptz,                  -- the first failure of the current run of failures
    last_error    text,
    created_at    timestamptz NOT NULL
);

-- Per sink, per event: where its delivery stands. Rows are created when the worker takes events past its cursor.
CREATE TABLE deliveries (
    sink_id         bigint NOT NULL,
    event_id        bigint NOT NULL,
    status          text NOT NULL,              -- pending | delivered | parked
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error      text,
    park_kind       text,                       -- unmapped | rejected | gave-up (when parked)
    remote_ref      text,                       -- what the sink called it (Frappe doc name, stream sequence)
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (sink_id, event_id)
);
CREATE INDEX deliveries_status ON deliveries (sink_id, status, event_id);

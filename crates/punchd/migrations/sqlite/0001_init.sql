-- punchd schema, SQLite. Times: *_at columns ending in _utc or named received_at/created_at/... hold UTC as
-- unix milliseconds (INTEGER); punched_at holds the terminal's local wall time as 'YYYY-MM-DD HH:MM:SS' text.

CREATE TABLE devices (
    sn               TEXT PRIMARY KEY,
    approval         TEXT NOT NULL,            -- pending | approved | blocked
    transport        TEXT NOT NULL DEFAULT 'push',
    alias            TEXT,
    site             TEXT,
    time_zone        TEXT,                     -- IANA zone; NULL = configured default
    address          TEXT,                     -- pull: host:port
    comm_key         INTEGER,
    pull_interval_secs INTEGER,
    clear_after_pull INTEGER NOT NULL DEFAULT 0,
    first_seen       INTEGER NOT NULL,
    last_seen        INTEGER,
    last_ip          TEXT,
    firmware         TEXT,
    push_version     TEXT,
    language         TEXT,
    device_type      TEXT,
    poll_delay_secs  INTEGER NOT NULL DEFAULT 10,
    info             TEXT NOT NULL DEFAULT '{}',   -- JSON object
    last_error       TEXT,
    clock_drift_secs INTEGER,
    revision         INTEGER NOT NULL DEFAULT 0    -- bumped on every settings change; instances reload by it
);
CREATE INDEX devices_revision ON devices (revision);

-- The untouched bytes of everything a device or source sent, and what became of it.
CREATE TABLE journal (
    id           INTEGER PRIMARY KEY,
    received_at  INTEGER NOT NULL,
    device_sn    TEXT,
    source       TEXT NOT NULL,
    kind         TEXT NOT NULL,        -- ATTLOG, OPERLOG, ATTPHOTO, devicecmd, pull-attlog, ...
    request      TEXT NOT NULL,        -- method + target for HTTP, a description otherwise
    remote_addr  TEXT,
    body         BLOB NOT NULL,
    n_records    INTEGER NOT NULL DEFAULT 0,
    n_stored     INTEGER NOT NULL DEFAULT 0,
    n_duplicate  INTEGER NOT NULL DEFAULT 0,
    errors       TEXT                  -- JSON array of {line_no, line, reason}; NULL = none
);
CREATE INDEX journal_device ON journal (device_sn, id);

CREATE TABLE punches (
    id             INTEGER PRIMARY KEY,
    device_sn      TEXT NOT NULL,
    pin            TEXT NOT NULL,
    punched_at     TEXT NOT NULL,
    punch_state    INTEGER NOT NULL,    -- -1 = not sent
    verify_mode    INTEGER,
    work_code      TEXT,
    extra          TEXT,                -- JSON array, NULL when empty
    time_zone      TEXT NOT NULL,
    punched_at_utc INTEGER NOT NULL,    -- unix seconds
    received_at    INTEGER NOT NULL,    -- unix ms
    source         TEXT NOT NULL,
    journal_id     INTEGER NOT NULL
);
-- Uniqueness of a punch, time-first within a device so new punches append at the right edge (perf-limits.md).
CREATE UNIQUE INDEX punches_identity ON punches (device_sn, punched_at, pin, punch_state);
CREATE INDEX punches_pin ON punches (pin, punched_at);

-- Users as the device knows them (from OPERLOG USER lines or pull reads).
CREATE TABLE device_users (
    device_sn   TEXT NOT NULL,
    pin         TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    privilege   INTEGER,
    password    TEXT NOT NULL DEFAULT '',
    card        TEXT NOT NULL DEFAULT '',
    grp         TEXT NOT NULL DEFAULT '',
    time_zones  TEXT NOT NULL DEFAULT '',
    verify_mode INTEGER,
    enabled     INTEGER NOT NULL DEFAULT 1,
    fields      TEXT NOT NULL DEFAULT '{}',   -- every key=value as sent
    updated_at  INTEGER NOT NULL,
    journal_id  INTEGER,
    PRIMARY KEY (device_sn, pin)
);

CREATE TABLE templates (
    device_sn  TEXT NOT NULL,
    pin        TEXT NOT NULL,
    kind       TEXT NOT NULL,          -- finger | face | finger-vein | bio
    bio_type   INTEGER NOT NULL DEFAULT 0,
    no         INTEGER NOT NULL,
    idx        INTEGER NOT NULL DEFAULT 0,
    valid      INTEGER,
    duress     INTEGER NOT NULL DEFAULT 0,
    major_ver  TEXT,
    minor_ver  TEXT,
    format     INTEGER,
    template   TEXT NOT NULL,          -- base64 as sent
    updated_at INTEGER NOT NULL,
    journal_id INTEGER,
    PRIMARY KEY (device_sn, pin, kind, bio_type, no, idx)
);

CREATE TABLE photos (
    id          INTEGER PRIMARY KEY,
    device_sn   TEXT NOT NULL,
    kind        TEXT NOT NULL,          -- attphoto | userpic | biophoto
    pin         TEXT,
    file_name   TEXT NOT NULL,
    taken_at    TEXT,                   -- terminal local time when the file name carries it
    content     BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    journal_id  INTEGER
);
CREATE UNIQUE INDEX photos_identity ON photos (device_sn, kind, file_name);

CREATE TABLE oplog (
    id          INTEGER PRIMARY KEY,
    device_sn   TEXT NOT NULL,
    op_type     INTEGER NOT NULL,
    operator    TEXT NOT NULL,
    op_at       TEXT NOT NULL,          -- terminal local time
    objects     TEXT NOT NULL,          -- JSON array
    journal_id  INTEGER
);
CREATE UNIQUE INDEX oplog_identity ON oplog (device_sn, op_at, op_type, operator, objects);

-- IDCARD, ERRORLOG, WORKCODE and unknown tagged records, kept as key=value JSON.
CREATE TABLE device_records (
    id          INTEGER PRIMARY KEY,
    device_sn   TEXT NOT NULL,
    tag         TEXT NOT NULL,
    fields      TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    journal_id  INTEGER
);

-- The push protocol's upload cursor per (device, table).
CREATE TABLE stamps (
    device_sn  TEXT NOT NULL,
    table_name TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (device_sn, table_name)
);

CREATE TABLE commands (
    id           INTEGER PRIMARY KEY,
    device_sn    TEXT NOT NULL,
    kind         TEXT NOT NULL,        -- JSON of CommandKind
    wire         TEXT,
    status       TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    requested_by TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    sent_at      INTEGER,
    finished_at  INTEGER,
    return_code  INTEGER,
    message      TEXT,
    result       TEXT
);
CREATE INDEX commands_pending ON commands (device_sn, status, id);

CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    hash       TEXT NOT NULL UNIQUE,   -- sha256 hex of the token
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

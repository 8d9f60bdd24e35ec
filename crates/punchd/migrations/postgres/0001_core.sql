-- punchd schema, PostgreSQL: the core tables (what SQLite's 0001–0004 hold, plus the token scope of its 0005).
--
-- Times: columns of type timestamptz hold instants (UTC); `punched_at`, `op_at` and `taken_at` are `timestamp`
-- (without time zone): the terminal's local wall time as it sent it, whole seconds.
-- Numbers the domain keeps as u16/u32 are stored in the next wider signed type (PostgreSQL has no unsigned ones).
--
-- Shared rules for the area migrations that follow (0002 operations/sources/outbox, 0003 attendance, 0004 agent,
-- 0005 ui, 0006–0007 gaps):
-- * device revisions come from the sequence `device_revision` (nextval): a removed device's revision must come
--   from it too, so the counter every instance reloads by never goes back;
-- * journal ids come from `journal_id_seq` (write_batch takes one before it writes the row).

CREATE SEQUENCE device_revision;

CREATE TABLE devices (
    sn                 text PRIMARY KEY,
    approval           text NOT NULL,              -- pending | approved | blocked
    transport          text NOT NULL DEFAULT 'push',
    alias              text,
    site               text,
    time_zone          text,                       -- IANA zone; NULL = configured default
    address            text,                       -- pull: host:port
    comm_key           bigint,
    pull_interval_secs bigint,
    clear_after_pull   boolean NOT NULL DEFAULT false,
    first_seen         timestamptz NOT NULL,
    last_seen          timestamptz,
    last_ip            text,
    firmware           text,
    push_version       text,
    language           text,
    device_type        text,
    poll_delay_secs    bigint NOT NULL DEFAULT 10,
    info               jsonb NOT NULL DEFAULT '{}',
    last_error         text,
    clock_drift_secs   bigint,
    revision           bigint NOT NULL DEFAULT 0   -- bumped (from device_revision) on every settings change
);
CREATE INDEX devices_revision ON devices (revision);
-- Pending devices are capped; the one pending longest is dropped first.
CREATE INDEX devices_pending ON devices (approval, first_seen);

-- The untouched bytes of everything a device or source sent, and what became of it.
CREATE TABLE journal (
    id           bigserial PRIMARY KEY,
    received_at  timestamptz NOT NULL,
    device_sn    text,
    source       text NOT NULL,
    kind         text NOT NULL,                    -- ATTLOG, OPERLOG, ATTPHOTO, devicecmd, pull:attendance, ...
    request      text NOT NULL,
    remote_addr  text,
    body         bytea NOT NULL,
    n_records    bigint NOT NULL DEFAULT 0,
    n_stored     bigint NOT NULL DEFAULT 0,
    n_duplicate  bigint NOT NULL DEFAULT 0,
    errors       jsonb                             -- array of {line_no, line, reason}; NULL = none
);
CREATE INDEX journal_device ON journal (device_sn, id);
CREATE INDEX journal_received ON journal (received_at);

CREATE TABLE punches (
    id             bigserial PRIMARY KEY,
    device_sn      text NOT NULL,
    pin            text NOT NULL,
    punched_at     timestamp NOT NULL,             -- terminal local wall time
    punch_state    integer NOT NULL,               -- -1 = not sent
    verify_mode    integer,
    work_code      text,
    extra          jsonb,                          -- array of strings, NULL when empty
    time_zone      text NOT NULL,
    punched_at_utc timestamptz NOT NULL,
    received_at    timestamptz NOT NULL,
    source         text NOT NULL,
    journal_id     bigint NOT NULL
);
-- Uniqueness of a punch, time-first within a device so new punches append at the right edge (perf-limits.md).
CREATE UNIQUE INDEX punches_identity ON punches (device_sn, punched_at, pin, punch_state);

-- Users as the device knows them.
CREATE TABLE device_users (
    device_sn   text NOT NULL,
    pin         text NOT NULL,
    name        text NOT NULL DEFAULT '',
    privilege   integer,
    password    text NOT NULL DEFAULT '',
    card        text NOT NULL DEFAULT '',
    grp         text NOT NULL DEFAULT '',
    time_zones  text NOT NULL DEFAULT '',
    verify_mode integer,
    enabled     boolean NOT NULL DEFAULT true,
    fields      jsonb NOT NULL DEFAULT '{}',       -- every key=value as sent
    updated_at  timestamptz NOT NULL,
    journal_id  bigint,
    PRIMARY KEY (device_sn, pin)
);

CREATE TABLE templates (
    device_sn  text NOT NULL,
    pin        text NOT NULL,
    kind       text NOT NULL,                      -- finger | face | finger-vein | bio
    bio_type   integer NOT NULL DEFAULT 0,
    no         integer NOT NULL,
    idx        integer NOT NULL DEFAULT 0,
    valid      integer,
    duress     boolean NOT NULL DEFAULT false,
    major_ver  text,
    minor_ver  text,
    format     integer,
    template   text NOT NULL,                      -- base64 as sent
    updated_at timestamptz NOT NULL,
    journal_id bigint,
    PRIMARY KEY (device_sn, pin, kind, bio_type, no, idx)
);

CREATE TABLE photos (
    id          bigserial PRIMARY KEY,
    device_sn   text NOT NULL,
    kind        text NOT NULL,                     -- attphoto | userpic | biophoto | userfile
    pin         text,
    file_name   text NOT NULL,
    taken_at    timestamp,                         -- terminal local time when the file name carries it
    content     bytea NOT NULL,
    received_at timestamptz NOT NULL,
    journal_id  bigint
);
CREATE UNIQUE INDEX photos_identity ON photos (device_sn, kind, file_name);

CREATE TABLE oplog (
    id          bigserial PRIMARY KEY,
    device_sn   text NOT NULL,
    op_type     integer NOT NULL,
    operator    text NOT NULL,
    op_at       timestamp NOT NULL,                -- terminal local time
    objects     jsonb NOT NULL,                    -- array of strings
    journal_id  bigint
);
CREATE UNIQUE INDEX oplog_identity ON oplog (device_sn, op_at, op_type, operator, objects);

-- IDCARD, ERRORLOG, WORKCODE and unknown tagged records, kept once as key=value JSON.
CREATE TABLE device_records (
    id          bigserial PRIMARY KEY,
    device_sn   text NOT NULL,
    tag         text NOT NULL,
    fields      jsonb NOT NULL,
    received_at timestamptz NOT NULL,
    journal_id  bigint
);
-- By a hash of the fields: a B-tree entry has a size limit, and a record may be long.
CREATE UNIQUE INDEX device_records_identity ON device_records (device_sn, tag, md5(fields::text));

-- The push protocol's upload cursor per (device, table).
CREATE TABLE stamps (
    device_sn  text NOT NULL,
    table_name text NOT NULL,
    value      text NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (device_sn, table_name)
);

CREATE TABLE commands (
    id           bigserial PRIMARY KEY,
    device_sn    text NOT NULL,
    kind         jsonb NOT NULL,                   -- CommandKind
    wire         text,
    status       text NOT NULL,
    attempts     bigint NOT NULL DEFAULT 0,
    requested_by text NOT NULL,
    created_at   timestamptz NOT NULL,
    sent_at      timestamptz,
    finished_at  timestamptz,
    return_code  bigint,
    message      text,
    result       jsonb
);
CREATE INDEX commands_pending ON commands (device_sn, status, id);

CREATE TABLE api_tokens (
    id         bigserial PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    hash       text NOT NULL UNIQUE,               -- sha256 hex of the token
    created_at timestamptz NOT NULL,
    revoked_at timestamptz,
    scope      text NOT NULL DEFAULT 'admin'       -- read | operate | admin
);

-- Push terminal authentication (README "Terminal authentication").
CREATE TABLE push_auth (
    sn              text PRIMARY KEY,
    bind_addresses  boolean,                       -- NULL: the server-wide setting
    addresses       jsonb NOT NULL DEFAULT '[]',   -- accepted remote addresses
    held_address    text,
    held_since      timestamptz,
    held_requests   bigint NOT NULL DEFAULT 0,
    comm_key        text,
    comm_key_seen   boolean NOT NULL DEFAULT false,
    handshake_key   text,
    updated_at      timestamptz NOT NULL
);

-- Attendance (issue 7): sites, employees, PIN mappings, shifts and roster, punch-state policies, corrections,
-- exception reviews, sign-offs and the audit log. Raw punches stay in `punches`, untouched: everything here refers
-- to them. Dates are local dates of the site ('YYYY-MM-DD'), clock times 'HH:MM[:SS]'; *_at columns hold UTC as
-- unix milliseconds, like 0001_init.sql.

CREATE TABLE sites (
    name        TEXT PRIMARY KEY,          -- the name devices carry in devices.site
    time_zone   TEXT NOT NULL,             -- IANA zone
    day_change  TEXT NOT NULL DEFAULT '00:00',
    weekly_offs TEXT NOT NULL DEFAULT '[]', -- JSON array of weekday numbers, Monday = 1 … Sunday = 7
    updated_at  INTEGER NOT NULL
);

CREATE TABLE site_holidays (
    site TEXT NOT NULL,
    day  TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (site, day)
);

CREATE TABLE employees (
    code          TEXT PRIMARY KEY,        -- employee code (Frappe's attendance_device_id convention: = PIN)
    name          TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'active', -- active | inactive | left
    joined_on     TEXT,                    -- first working day
    left_on       TEXT,                    -- last working day (status left)
    site          TEXT,
    department    TEXT,
    default_shift TEXT,
    updated_at    INTEGER NOT NULL
);

-- (site or device, PIN) -> employee. scope is 'site' or 'device'; scope_key the site name or device SN.
CREATE TABLE pin_mappings (
    scope         TEXT NOT NULL,
    scope_key     TEXT NOT NULL,
    pin           TEXT NOT NULL,
    employee_code TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (scope, scope_key, pin)
);

CREATE TABLE shifts (
    name       TEXT PRIMARY KEY,
    definition TEXT NOT NULL,              -- JSON of attendance::rules::Shift
    updated_at INTEGER NOT NULL
);

-- Per-date overrides; shift NULL = a day off for that employee.
CREATE TABLE roster (
    employee_code TEXT NOT NULL,
    day           TEXT NOT NULL,
    shift         TEXT,
    PRIMARY KEY (employee_code, day)
);

-- Punch-state policy per device or site (scope as in pin_mappings).
CREATE TABLE punch_policies (
    scope      TEXT NOT NULL,
    scope_key  TEXT NOT NULL,
    policy     TEXT NOT NULL,              -- device | first-last | alternating | schedule
    double_tap_secs INTEGER NOT NULL DEFAULT 60,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (scope, scope_key)
);

-- HR's changes to a day. Never touch punches.
CREATE TABLE corrections (
    id            INTEGER PRIMARY KEY,
    employee_code TEXT NOT NULL,
    day           TEXT NOT NULL,
    kind          TEXT NOT NULL,           -- add-punch | void-punch | set-status | approve-overtime | cut-overtime
    punched_at    TEXT,                    -- add-punch: site local wall time
    punch_state   INTEGER,                 -- add-punch: punch state
    punch_id      INTEGER,                 -- void-punch: punches.id
    status        TEXT,                    -- set-status
    minutes       INTEGER,                 -- approve/cut overtime: minutes kept
    author        TEXT NOT NULL,
    reason        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER
);
CREATE INDEX corrections_day ON corrections (day, employee_code);

-- The review state of one exception (employee, day, kind): open is the absence of a row.
CREATE TABLE exception_reviews (
    employee_code TEXT NOT NULL,
    day           TEXT NOT NULL,
    kind          TEXT NOT NULL,
    state         TEXT NOT NULL,           -- explained | approved | rejected
    author        TEXT NOT NULL,
    note          TEXT NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (employee_code, day, kind)
);

CREATE TABLE signoffs (
    site       TEXT NOT NULL,
    month      TEXT NOT NULL,              -- 'YYYY-MM'
    signed_at  INTEGER NOT NULL,
    author     TEXT NOT NULL,
    forced     INTEGER NOT NULL DEFAULT 0,
    max_punch_id INTEGER NOT NULL,         -- punches with a higher id arrived after sign-off
    snapshot   TEXT NOT NULL,              -- JSON of the frozen month
    PRIMARY KEY (site, month)
);

CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    author  TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail  TEXT NOT NULL DEFAULT '{}'
);

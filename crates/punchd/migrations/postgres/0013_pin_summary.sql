-- The punches per (device, PIN) the web UI keeps (issue 11, attendance/seen_cache.rs), saved so a start reads them
-- and only the punches stored since instead of every punch. Derived from `punches` (which stay the truth): the
-- rows are replaced whole after each whole read and the changed pairs overwritten about every minute.
CREATE TABLE pin_summary (
    device_sn  text NOT NULL,
    pin        text NOT NULL,
    n_punches  bigint NOT NULL,
    first_seen timestamptz NOT NULL,   -- the pair's first punch
    last_seen  timestamptz NOT NULL,   -- the pair's last punch
    PRIMARY KEY (device_sn, pin)
);

-- One row (id 1) once a summary is saved: the highest punch id it counts, and when it was saved.
CREATE TABLE pin_summary_cover (
    id       integer PRIMARY KEY CHECK (id = 1),
    up_to_id bigint NOT NULL,
    saved_at timestamptz NOT NULL
);

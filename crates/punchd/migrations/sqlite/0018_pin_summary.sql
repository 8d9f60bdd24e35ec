-- The punches per (device, PIN) the web UI keeps (issue 11, attendance/seen_cache.rs), saved so a start reads them
-- and only the punches stored since instead of every punch. Derived from `punches` (which stay the truth): the
-- rows are replaced whole after each whole read and the changed pairs overwritten about every minute.
-- first_seen/last_seen: the pair's first and last punch, UTC unix milliseconds (as *_at in 0001_init.sql).
CREATE TABLE pin_summary (
    device_sn  TEXT NOT NULL,
    pin        TEXT NOT NULL,
    n_punches  INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    PRIMARY KEY (device_sn, pin)
);

-- One row (id 1) once a summary is saved: the highest punch id it counts, and when it was saved (UTC ms).
CREATE TABLE pin_summary_cover (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    up_to_id INTEGER NOT NULL,
    saved_at INTEGER NOT NULL
);

-- Safe device clear (issue 8): per device, whether its attendance log may only be cleared (clear_after_pull, the
-- clear_attendance_log command) once every sink has delivered or parked every punch of it. On by default: a clear
-- cannot be undone, and until every HR system has a punch the terminal is its second copy.
ALTER TABLE devices ADD COLUMN safe_clear INTEGER NOT NULL DEFAULT 1;

-- Punches HR added in the monthly review (add-punch corrections) delivered like any other check-in: what became of
-- each at each sink. Times: unix milliseconds (UTC).
CREATE TABLE correction_deliveries (
    sink_id        INTEGER NOT NULL,
    correction_id  INTEGER NOT NULL,
    status         TEXT NOT NULL,           -- delivered | parked
    remote_ref     TEXT,                    -- the sink's name for the check-in (Frappe document name, stream sequence)
    note           TEXT NOT NULL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (sink_id, correction_id)
) WITHOUT ROWID;

-- Delivery (issue 8): what became, per sink, of the check-in of a punch HR voided (a void-punch correction).
-- Times: unix milliseconds (UTC).
CREATE TABLE withdrawals (
    sink_id        INTEGER NOT NULL,
    correction_id  INTEGER NOT NULL,
    punch_id       INTEGER NOT NULL,
    status         TEXT NOT NULL,           -- withdrawn | needs-hr | not-delivered
    remote_ref     TEXT,                    -- the sink's name for the check-in (Frappe document name)
    note           TEXT NOT NULL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (sink_id, correction_id)
) WITHOUT ROWID;

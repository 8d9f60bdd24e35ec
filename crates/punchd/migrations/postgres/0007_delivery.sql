-- Delivery (issue 8): what became, per sink, of the check-in of a punch HR voided (a void-punch correction).
-- The PostgreSQL twin of sqlite/0012_delivery.sql.
CREATE TABLE withdrawals (
    sink_id        bigint NOT NULL,
    correction_id  bigint NOT NULL,
    punch_id       bigint NOT NULL,
    status         text NOT NULL,           -- withdrawn | needs-hr | not-delivered
    remote_ref     text,                    -- the sink's name for the check-in (Frappe document name)
    note           text NOT NULL,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (sink_id, correction_id)
);

-- Delivery gaps (issue 8); the PostgreSQL twin of sqlite/0014_delivery_gaps.sql.
-- Safe device clear: per device, clear its log only once every sink has delivered or parked its punches.
ALTER TABLE devices ADD COLUMN safe_clear boolean NOT NULL DEFAULT true;

-- What became, per sink, of each punch HR added in the monthly review (an add-punch correction).
CREATE TABLE correction_deliveries (
    sink_id        bigint NOT NULL,
    correction_id  bigint NOT NULL,
    status         text NOT NULL,           -- delivered | parked
    remote_ref     text,
    note           text NOT NULL,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (sink_id, correction_id)
);

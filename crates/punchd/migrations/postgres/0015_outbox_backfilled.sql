-- Whether an outbox event was written by a backfill (a sink added with a start date, a replay from a date) rather
-- than in its punch's own transaction (store/postgres/outbox.rs). A punch without an event was stored while no sink
-- existed (or its event was pruned once every sink had passed it), so a sink made without a start date never owes
-- it, though the backfill's transaction commits after the sink was made. Rows written before this migration count
-- as written with their punch.
ALTER TABLE outbox ADD COLUMN backfilled boolean NOT NULL DEFAULT false;

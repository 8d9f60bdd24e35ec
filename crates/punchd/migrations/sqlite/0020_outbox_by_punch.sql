-- Outbox events live on their punch (issue 8). A punch's event is now `punches.outbox_at` (when the event was
-- written, unix ms; NULL: no event) and its id is the punch's id, so writing the events of a batch costs one more
-- bound column in the punch rows instead of a second table and its unique index: callgrind counted the old outbox
-- row at 2,761 instructions per punch, most of it b-tree work (BENCHMARKS.md, "Outbox events on the punch row").
--
-- `outbox` stays as a read-only view of the same rows (id, punch_id, created_at), which `punchd migrate` copies to
-- PostgreSQL's `outbox` table.
--
-- A sink's delivered count no longer counts the outbox up to its cursor on every look: `sinks.passed` keeps the
-- number of events at or below the cursor inside the sink's start date, moved with the cursor
-- (store/sqlite/outbox.rs).
--
-- Existing events, their deliveries and the sinks' cursors move from the old event ids to punch ids:
-- - each sink's cursor becomes the largest punch id among the events it had taken (id <= cursor); with none taken,
--   one below the smallest punch id among the events; with no event at all, the largest punch id stored;
-- - an event it had not taken whose punch id is now at or below that cursor (an event a replay or another sink's
--   start date wrote for an older punch) gets a pending delivery row, due now, so it is still delivered;
-- - delivery rows keep their state under the event's new id.
-- Nothing a sink owed is lost; nothing it had is owed again.

ALTER TABLE punches ADD COLUMN outbox_at INTEGER;
ALTER TABLE sinks ADD COLUMN passed INTEGER NOT NULL DEFAULT 0;

CREATE TEMP TABLE outbox_by_punch_cursor AS
SELECT s.id AS sink_id,
       COALESCE((SELECT MAX(o.punch_id) FROM outbox o WHERE o.id <= s.cursor),
                (SELECT MIN(o.punch_id) - 1 FROM outbox o WHERE o.id > s.cursor),
                (SELECT MAX(p.id) FROM punches p),
                0) AS cursor
FROM sinks s;

UPDATE punches SET outbox_at = (SELECT o.created_at FROM outbox o WHERE o.punch_id = punches.id)
WHERE id IN (SELECT punch_id FROM outbox);

CREATE TABLE deliveries_by_punch (
    sink_id         INTEGER NOT NULL,
    event_id        INTEGER NOT NULL,       -- the punch's id
    status          TEXT NOT NULL,          -- pending | delivered | parked
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    park_kind       TEXT,                   -- unmapped | rejected | gave-up (when parked)
    remote_ref      TEXT,                   -- what the sink called it (Frappe doc name, stream sequence)
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (sink_id, event_id)
) WITHOUT ROWID;
INSERT INTO deliveries_by_punch (sink_id, event_id, status, attempts, next_attempt_at, last_error, park_kind,
                                 remote_ref, updated_at)
SELECT d.sink_id, o.punch_id, d.status, d.attempts, d.next_attempt_at, d.last_error, d.park_kind, d.remote_ref,
       d.updated_at
FROM deliveries d JOIN outbox o ON o.id = d.event_id;
INSERT OR IGNORE INTO deliveries_by_punch (sink_id, event_id, status, attempts, next_attempt_at, updated_at)
SELECT s.id, o.punch_id, 'pending', 0, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER),
       CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
FROM sinks s
JOIN outbox_by_punch_cursor c ON c.sink_id = s.id
JOIN outbox o ON o.id > s.cursor AND o.punch_id <= c.cursor
JOIN punches p ON p.id = o.punch_id
WHERE s.since_utc IS NULL OR p.punched_at_utc >= s.since_utc;

UPDATE sinks SET cursor = (SELECT c.cursor FROM outbox_by_punch_cursor c WHERE c.sink_id = sinks.id);
UPDATE sinks SET passed = (
    SELECT COUNT(*) FROM punches p
    WHERE p.id <= sinks.cursor AND p.outbox_at IS NOT NULL
      AND (sinks.since_utc IS NULL OR p.punched_at_utc >= sinks.since_utc));

DROP TABLE deliveries;
ALTER TABLE deliveries_by_punch RENAME TO deliveries;
CREATE INDEX deliveries_status ON deliveries (sink_id, status, event_id);

DROP TABLE outbox;
DROP TABLE outbox_by_punch_cursor;

-- Where the next outbox pruning starts its scan of the punches (there is no index on `outbox_at`): the first punch
-- that still had an event after the last prune (store/sqlite/delivery.rs); a backfill sets it back to 0
-- (store/sqlite/outbox.rs). One row.
-- Not copied by `punchd migrate`.
CREATE TABLE outbox_prune (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    from_id  INTEGER NOT NULL
);
INSERT INTO outbox_prune (id, from_id) VALUES (1, 0);
CREATE VIEW outbox (id, punch_id, created_at) AS
SELECT id, id, outbox_at FROM punches WHERE outbox_at IS NOT NULL;

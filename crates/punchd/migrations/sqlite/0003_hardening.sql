-- Issue 6, resources.

-- Re-sent IDCARD, ERRORLOG and other tagged records were stored once per sending: keep the first copy of each
-- and refuse the rest like every other table (the insert says ON CONFLICT DO NOTHING).
DELETE FROM device_records
 WHERE id NOT IN (SELECT MIN(id) FROM device_records GROUP BY device_sn, tag, fields);
CREATE UNIQUE INDEX device_records_identity ON device_records (device_sn, tag, fields);

-- Pending devices are capped; the one pending longest is dropped first.
CREATE INDEX devices_pending ON devices (approval, first_seen);

-- While storage fails the writer probes it with a write it deletes again (store/sqlite/hardening.rs).
CREATE TABLE storage_probe (
    id  INTEGER PRIMARY KEY,
    pad BLOB
);

-- Edge agents (issue 10), SQLite: the batches of punches the hub acknowledged to agents, so a gap (punches the
-- hub acknowledged and no longer holds) is re-sent from the earliest batch that lost punches, not from the start.
-- Same table as postgres/0010_agent_batches.sql. Punches a batch newly stored carry its journal id.
CREATE TABLE agent_batches (
    journal_id INTEGER PRIMARY KEY,                -- the batch's raw journal entry
    device_sn  TEXT NOT NULL,
    first_seq  INTEGER NOT NULL,                    -- the agent's sequence numbers of the device, first..=last
    last_seq   INTEGER NOT NULL,
    n_stored   INTEGER NOT NULL                     -- punches it newly stored (re-based when a gap is settled)
);
CREATE INDEX agent_batches_by_device ON agent_batches (device_sn, first_seq);

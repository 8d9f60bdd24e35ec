-- Edge agents (issue 10). Times are UTC unix milliseconds.
--
-- Hub side: an agent registered by an admin (`punchd agents add`), bound to one site; the devices it feeds; the
-- alarms it raised or the hub raised about it. How far the hub holds an agent-fed device is NOT here: it is the
-- stamp `agent:seq` of the device, written in the same transaction as the punches of each batch.
CREATE TABLE agents (
    id                INTEGER PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    site              TEXT NOT NULL,
    token_hash        TEXT NOT NULL UNIQUE,     -- sha256 hex of the agent token
    created_at        INTEGER NOT NULL,
    version           TEXT,                     -- punchd version the agent reported
    last_contact_at   INTEGER,
    last_contact_ip   TEXT,
    backlog_count     INTEGER NOT NULL DEFAULT 0,   -- punches the agent holds that the hub has not acknowledged
    backlog_oldest_at INTEGER                   -- when the oldest of them reached the agent
);

CREATE TABLE agent_devices (
    device_sn  TEXT PRIMARY KEY,
    agent_id   INTEGER NOT NULL,
    time_zone  TEXT,
    claimed_at INTEGER NOT NULL
);

CREATE TABLE agent_alarms (
    id         INTEGER PRIMARY KEY,
    agent_id   INTEGER NOT NULL,               -- 0 on the agent itself
    device_sn  TEXT,
    kind       TEXT NOT NULL,                  -- gap | sequence
    message    TEXT NOT NULL,
    raised_at  INTEGER NOT NULL,
    reported_at INTEGER                        -- agent side: when the hub took the alarm
);
CREATE INDEX agent_alarms_by_agent ON agent_alarms (agent_id, raised_at);

-- Agent side: the forwarding state machine of each device (stored -> sent -> acknowledged), written after each
-- step. `acked_*` is what the hub acknowledged; `sent_*` the batch in flight. Ids are local punch ids, seqs the
-- per-device sequence numbers sent to the hub (1 = the device's first punch at the agent).
CREATE TABLE agent_outbound (
    device_sn  TEXT PRIMARY KEY,
    phase      TEXT NOT NULL,                  -- stored | sent | acknowledged
    acked_id   INTEGER NOT NULL DEFAULT 0,
    acked_seq  INTEGER NOT NULL DEFAULT 0,
    sent_id    INTEGER NOT NULL DEFAULT 0,
    sent_seq   INTEGER NOT NULL DEFAULT 0,
    sent_at    INTEGER,
    updated_at INTEGER NOT NULL
);

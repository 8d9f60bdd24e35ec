-- Edge agents (issue 10), PostgreSQL. Same tables as sqlite/0009_agents.sql; times are UTC unix milliseconds
-- (BIGINT), as there. How far the hub holds an agent-fed device is the stamp `agent:seq` of the device, written in
-- the batch's transaction.
CREATE TABLE IF NOT EXISTS agents (
    id                BIGSERIAL PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    site              TEXT NOT NULL,
    token_hash        TEXT NOT NULL UNIQUE,
    created_at        BIGINT NOT NULL,
    version           TEXT,
    last_contact_at   BIGINT,
    last_contact_ip   TEXT,
    backlog_count     BIGINT NOT NULL DEFAULT 0,
    backlog_oldest_at BIGINT
);

CREATE TABLE IF NOT EXISTS agent_devices (
    device_sn  TEXT PRIMARY KEY,
    agent_id   BIGINT NOT NULL,
    time_zone  TEXT,
    claimed_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS agent_alarms (
    id          BIGSERIAL PRIMARY KEY,
    agent_id    BIGINT NOT NULL,
    device_sn   TEXT,
    kind        TEXT NOT NULL,
    message     TEXT NOT NULL,
    raised_at   BIGINT NOT NULL,
    reported_at BIGINT
);
CREATE INDEX IF NOT EXISTS agent_alarms_by_agent ON agent_alarms (agent_id, raised_at);

-- Agent side (an agent always runs on SQLite; kept so one schema serves both roles).
CREATE TABLE IF NOT EXISTS agent_outbound (
    device_sn  TEXT PRIMARY KEY,
    phase      TEXT NOT NULL,
    acked_id   BIGINT NOT NULL DEFAULT 0,
    acked_seq  BIGINT NOT NULL DEFAULT 0,
    sent_id    BIGINT NOT NULL DEFAULT 0,
    sent_seq   BIGINT NOT NULL DEFAULT 0,
    sent_at    BIGINT,
    updated_at BIGINT NOT NULL
);

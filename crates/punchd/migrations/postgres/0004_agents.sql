-- Edge agents (issue 10), PostgreSQL: the tables of sqlite/0009_agents.sql. Times are timestamptz (instants, UTC).
-- How far the hub holds an agent-fed device is the stamp `agent:seq` of the device (table stamps), written in the
-- batch's transaction.

-- Hub side: agents registered by an admin, each bound to one site.
CREATE TABLE agents (
    id                bigserial PRIMARY KEY,
    name              text NOT NULL UNIQUE,
    site              text NOT NULL,
    token_hash        text NOT NULL UNIQUE,        -- sha256 hex of the agent token
    created_at        timestamptz NOT NULL,
    version           text,
    last_contact_at   timestamptz,
    last_contact_ip   text,
    backlog_count     bigint NOT NULL DEFAULT 0,
    backlog_oldest_at timestamptz
);

CREATE TABLE agent_devices (
    device_sn  text PRIMARY KEY,
    agent_id   bigint NOT NULL,
    time_zone  text,
    claimed_at timestamptz NOT NULL
);

CREATE TABLE agent_alarms (
    id          bigserial PRIMARY KEY,
    agent_id    bigint NOT NULL,                   -- 0 on the agent itself
    device_sn   text,
    kind        text NOT NULL,                     -- gap | sequence
    message     text NOT NULL,
    raised_at   timestamptz NOT NULL,
    reported_at timestamptz
);
CREATE INDEX agent_alarms_by_agent ON agent_alarms (agent_id, id);

-- Agent side (an agent runs on SQLite; the table is here so one schema serves both roles).
CREATE TABLE agent_outbound (
    device_sn  text PRIMARY KEY,
    phase      text NOT NULL,                      -- stored | sent | acknowledged
    acked_id   bigint NOT NULL DEFAULT 0,
    acked_seq  bigint NOT NULL DEFAULT 0,
    sent_id    bigint NOT NULL DEFAULT 0,
    sent_seq   bigint NOT NULL DEFAULT 0,
    sent_at    timestamptz,
    updated_at timestamptz NOT NULL
);

-- Web UI accounts and their server-side sessions (issue 11); the PostgreSQL twin of sqlite/0010_ui_accounts.sql.
-- Times are UTC unix milliseconds, as in the SQLite schema, so both backends share the row mapping.
CREATE TABLE ui_accounts (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL,               -- viewer | hr | admin (domain::Role)
    password_hash TEXT NOT NULL,               -- argon2id PHC string
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    last_login_at BIGINT
);
CREATE TABLE ui_sessions (
    token_hash   TEXT PRIMARY KEY,             -- sha256 hex of the cookie value (never the value itself)
    account_id   BIGINT NOT NULL REFERENCES ui_accounts(id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,                -- checked on every state-changing request
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,              -- idle expiry counts from here
    remote_addr  TEXT
);
CREATE INDEX ui_sessions_by_account ON ui_sessions (account_id);
CREATE INDEX ui_sessions_by_last_seen ON ui_sessions (last_seen_at);

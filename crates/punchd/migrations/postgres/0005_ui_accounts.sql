-- Web UI accounts and their server-side sessions (issue 11); the PostgreSQL twin of sqlite/0010_ui_accounts.sql.
-- Times are instants (timestamptz, UTC), as in 0001_core.sql.
CREATE TABLE ui_accounts (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL,               -- viewer | hr | admin (domain::Role)
    password_hash TEXT NOT NULL,               -- argon2id PHC string
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    last_login_at timestamptz
);
CREATE TABLE ui_sessions (
    token_hash   TEXT PRIMARY KEY,             -- sha256 hex of the cookie value (never the value itself)
    account_id   BIGINT NOT NULL REFERENCES ui_accounts(id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,                -- checked on every state-changing request
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,         -- idle expiry counts from here
    remote_addr  TEXT
);
CREATE INDEX ui_sessions_by_account ON ui_sessions (account_id);
CREATE INDEX ui_sessions_by_last_seen ON ui_sessions (last_seen_at);

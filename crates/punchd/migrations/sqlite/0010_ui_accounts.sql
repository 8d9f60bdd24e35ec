-- Web UI accounts and their server-side sessions (issue 11). Times are UTC unix milliseconds.
CREATE TABLE ui_accounts (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL,               -- viewer | hr | admin (domain::Role)
    password_hash TEXT NOT NULL,               -- argon2id PHC string
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    last_login_at INTEGER
);
CREATE TABLE ui_sessions (
    token_hash   TEXT PRIMARY KEY,             -- sha256 hex of the cookie value (never the value itself)
    account_id   INTEGER NOT NULL REFERENCES ui_accounts(id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,                -- checked on every state-changing request
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,             -- idle expiry counts from here
    remote_addr  TEXT
) WITHOUT ROWID;
CREATE INDEX ui_sessions_by_account ON ui_sessions (account_id);
CREATE INDEX ui_sessions_by_last_seen ON ui_sessions (last_seen_at);

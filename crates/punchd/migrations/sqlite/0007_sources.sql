-- Sources other than terminals (issue 9): webhooks, file imports, BioTime readers. One row per named source with
-- its settings, its cursor and what its last runs did. Times are UTC unix milliseconds.
CREATE TABLE sources (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,            -- webhook | import | biotime
    token_hash      TEXT UNIQUE,              -- webhook: sha256 hex of its token
    secret          TEXT,                     -- biotime: the API password (needed in clear to log in)
    time_zone       TEXT,                     -- IANA zone for naive times; NULL = configured default
    settings        TEXT NOT NULL DEFAULT '{}',   -- JSON object, kind-specific
    enabled         INTEGER NOT NULL DEFAULT 1,
    cursor          TEXT,                     -- kind-specific position (BioTime: upload_time and id)
    created_at      INTEGER NOT NULL,
    last_run_at     INTEGER,
    last_success_at INTEGER,
    last_error      TEXT,                     -- NULL after a success
    last_error_at   INTEGER,
    n_runs          INTEGER NOT NULL DEFAULT 0,
    n_stored        INTEGER NOT NULL DEFAULT 0,
    n_duplicate     INTEGER NOT NULL DEFAULT 0,
    n_rejected      INTEGER NOT NULL DEFAULT 0
);

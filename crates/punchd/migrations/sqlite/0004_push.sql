-- Push terminal authentication (README "Terminal authentication"): per device, the addresses an approved
-- terminal may talk from, an address held for re-approval, and the keys the push protocol carries
-- (push.md §3.1 `pushcommkey` on the handshake, SPEC-US `ComKey=` on every request).
CREATE TABLE push_auth (
    sn              TEXT PRIMARY KEY,
    bind_addresses  INTEGER,                  -- NULL: the server-wide setting; 0 off; 1 on
    addresses       TEXT NOT NULL DEFAULT '[]', -- JSON array of accepted remote addresses
    held_address    TEXT,                     -- the latest address refused, waiting for `devices approve`
    held_since      INTEGER,                  -- ms UTC of the first refused request from it
    held_requests   INTEGER NOT NULL DEFAULT 0,
    comm_key        TEXT,                     -- required `ComKey=` value (SPEC-US); NULL = not required
    comm_key_seen   INTEGER NOT NULL DEFAULT 0, -- 1 once a request carried it: from then on it is required
    handshake_key   TEXT,                     -- `pushcommkey=` pinned from the first approved handshake
    updated_at      INTEGER NOT NULL
);

-- Shops, users, API keys, the key_changes invalidation feed and audit events.
-- Times are INTEGER microseconds since the Unix epoch (UTC), so the same values
-- move unchanged between SQLite and PostgreSQL (BIGINT).

CREATE TABLE shops (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    shop_id        TEXT NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    email          TEXT NOT NULL UNIQUE,
    role           TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'staff')),
    password_hash  TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX users_shop ON users (shop_id);

CREATE TABLE api_keys (
    id                     TEXT PRIMARY KEY,
    shop_id                TEXT NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    name                   TEXT NOT NULL,
    environment            TEXT NOT NULL CHECK (environment IN ('live', 'test')),
    kind                   TEXT NOT NULL CHECK (kind IN ('standard', 'legacy')),
    display                TEXT NOT NULL,
    -- HMAC-SHA256(server secret, key): the only trace of the secret.
    key_hash               BLOB NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    permissions            TEXT NOT NULL,
    allowed_ips            TEXT NOT NULL DEFAULT '',
    rate_limit_per_minute  INTEGER NOT NULL CHECK (rate_limit_per_minute BETWEEN 1 AND 10000),
    expires_at             INTEGER,
    revoked_at             INTEGER,
    retired_at             INTEGER,
    template               TEXT,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL,
    created_by             TEXT NOT NULL,
    sent_in_url_at         INTEGER
);
CREATE INDEX api_keys_shop_created ON api_keys (shop_id, created_at DESC, id DESC);

-- Every key mutation appends here in its own transaction; every instance tails
-- it and evicts the hash from its caches.
CREATE TABLE key_changes (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id      TEXT NOT NULL,
    key_hash    BLOB NOT NULL,
    changed_at  INTEGER NOT NULL
);
CREATE INDEX key_changes_changed_at ON key_changes (changed_at);

CREATE TABLE audit_events (
    id           TEXT PRIMARY KEY,
    seq          INTEGER NOT NULL,
    shop_id      TEXT NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    at           INTEGER NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    key_id       TEXT,
    environment  TEXT CHECK (environment IN ('live', 'test')),
    ip           TEXT,
    details      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_shop ON audit_events (shop_id, at DESC, seq DESC);
CREATE INDEX audit_events_key ON audit_events (key_id, at DESC);

-- The one-time link `serve` prints on an empty database. Only a hash is kept;
-- a token works once, and only while no shop exists.
CREATE TABLE setup_tokens (
    token_hash  BLOB PRIMARY KEY,
    created_at  INTEGER NOT NULL,
    used_at     INTEGER
);

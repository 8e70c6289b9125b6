-- Usage of keys, written only by the once-a-second batched flush (never on
-- the request path). Minute buckets cover the last hour and roll up into hour
-- buckets, which are kept 90 days; lifetime totals and per-endpoint counts are
-- never pruned.

CREATE TABLE usage_minutes (
    key_id            TEXT NOT NULL,
    minute_start      INTEGER NOT NULL,
    method            TEXT NOT NULL,
    route             TEXT NOT NULL,
    requests          INTEGER NOT NULL DEFAULT 0,
    errors_4xx        INTEGER NOT NULL DEFAULT 0,
    errors_5xx        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, minute_start, method, route)
);
CREATE INDEX usage_minutes_start ON usage_minutes (minute_start);

CREATE TABLE usage_hours (
    key_id        TEXT NOT NULL,
    hour_start    INTEGER NOT NULL,
    requests      INTEGER NOT NULL DEFAULT 0,
    errors_4xx    INTEGER NOT NULL DEFAULT 0,
    errors_5xx    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, hour_start)
);
CREATE INDEX usage_hours_start ON usage_hours (hour_start);

CREATE TABLE usage_endpoints (
    key_id        TEXT NOT NULL,
    method        TEXT NOT NULL,
    route         TEXT NOT NULL,
    requests      INTEGER NOT NULL DEFAULT 0,
    errors_4xx    INTEGER NOT NULL DEFAULT 0,
    errors_5xx    INTEGER NOT NULL DEFAULT 0,
    last_used_at  INTEGER NOT NULL,
    PRIMARY KEY (key_id, method, route)
);

CREATE TABLE usage_totals (
    key_id             TEXT PRIMARY KEY,
    requests           INTEGER NOT NULL DEFAULT 0,
    errors_4xx         INTEGER NOT NULL DEFAULT 0,
    errors_5xx         INTEGER NOT NULL DEFAULT 0,
    rejected_revoked   INTEGER NOT NULL DEFAULT 0,
    rejected_expired   INTEGER NOT NULL DEFAULT 0,
    rejected_retired   INTEGER NOT NULL DEFAULT 0,
    rejected_ip        INTEGER NOT NULL DEFAULT 0,
    rejected_rate      INTEGER NOT NULL DEFAULT 0,
    last_used_at       INTEGER,
    last_used_ip       TEXT,
    last_user_agent    TEXT
);

-- Distinct client IPs and user agents seen per key (bounded per key), so a
-- shop can tell which integration still uses a key.
CREATE TABLE usage_clients (
    key_id        TEXT NOT NULL,
    ip            TEXT NOT NULL,
    user_agent    TEXT NOT NULL,
    requests      INTEGER NOT NULL DEFAULT 0,
    last_used_at  INTEGER NOT NULL,
    PRIMARY KEY (key_id, ip, user_agent)
);

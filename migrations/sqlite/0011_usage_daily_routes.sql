-- Least-privilege suggestions (SPEC "Least-privilege suggestions"): requests
-- per key, route, client IP and day, added by the usage flush and kept 30
-- days. Which permissions a key needed and where it was used from are read
-- from here, never from a scan of every request.

CREATE TABLE usage_daily_routes (
    key_id    TEXT NOT NULL,
    day       INTEGER NOT NULL,
    method    TEXT NOT NULL,
    route     TEXT NOT NULL,
    ip        TEXT NOT NULL,
    requests  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, day, method, route, ip)
);
CREATE INDEX usage_daily_routes_day ON usage_daily_routes (day);

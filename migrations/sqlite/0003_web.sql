-- The web UI: login sessions and one-time passwords.
--
-- A session is found by the keyed hash (HMAC-SHA256 with the server secret) of
-- the random value in the browser's cookie, so a copy of the database does not
-- hand out logged-in sessions. Sessions live in the database: they survive a
-- restart and are shared by every instance.

CREATE TABLE web_sessions (
    token_hash    BLOB PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    shop_id       TEXT NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    -- Idle expiry, pushed forward as the session is used (never past the
    -- absolute lifetime the application allows).
    expires_at    INTEGER NOT NULL,
    ip            TEXT
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);

-- A user whose password was set by an owner (a new user, or a reset) holds a
-- one-time password: it works until `expires_at`, and only to choose a new one.
CREATE TABLE one_time_passwords (
    user_id     TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);

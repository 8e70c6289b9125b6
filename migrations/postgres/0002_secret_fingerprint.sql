-- The server secret's fingerprint: an HMAC, keyed with the secret, of a fixed
-- label (never the secret itself). Recorded by the first instance or CLI that
-- opens the database; one started with another secret refuses to start
-- instead of answering `invalid_key` to every key. (migrations/sqlite 0007)

CREATE TABLE secret_fingerprint (
    id           BIGINT PRIMARY KEY CHECK (id = 1),
    fingerprint  BYTEA NOT NULL CHECK (length(fingerprint) = 32),
    created_at   BIGINT NOT NULL
);

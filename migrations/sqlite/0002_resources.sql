-- The shop's data. Every row carries its shop and environment; every query
-- filters on both (see src/store/resources.rs).

CREATE TABLE clients (
    id             TEXT PRIMARY KEY,
    shop_id        TEXT NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    environment    TEXT NOT NULL CHECK (environment IN ('live', 'test')),
    first_name     TEXT,
    last_name      TEXT,
    business_name  TEXT,
    email          TEXT,
    phone          TEXT,
    address        TEXT,
    city           TEXT,
    postcode       TEXT,
    country        TEXT,
    notes          TEXT,
    -- first_name, last_name, business_name, email and phone, lower-cased by
    -- the application (full Unicode; SQLite's lower() and LIKE fold ASCII
    -- only) and joined by U+0001: what the `q` search matches.
    search_text    TEXT NOT NULL DEFAULT '',
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX clients_created ON clients (shop_id, environment, created_at, id);
CREATE INDEX clients_updated ON clients (shop_id, environment, updated_at, id);

-- Next order number per shop and environment; never reset, so references
-- never repeat.
CREATE TABLE order_sequences (
    shop_id      TEXT NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    environment  TEXT NOT NULL CHECK (environment IN ('live', 'test')),
    last_number  INTEGER NOT NULL,
    PRIMARY KEY (shop_id, environment)
);

CREATE TABLE orders (
    id                   TEXT PRIMARY KEY,
    shop_id              TEXT NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    environment          TEXT NOT NULL CHECK (environment IN ('live', 'test')),
    reference            TEXT NOT NULL,
    client_id            TEXT NOT NULL REFERENCES clients (id),
    status               TEXT NOT NULL,
    problem_description  TEXT,
    technician           TEXT,
    due_date             TEXT,
    estimate_cents       INTEGER CHECK (estimate_cents >= 0),
    price_cents          INTEGER CHECK (price_cents >= 0),
    currency             TEXT NOT NULL,
    notes                TEXT,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    UNIQUE (shop_id, environment, reference)
);
CREATE INDEX orders_created ON orders (shop_id, environment, created_at, id);
CREATE INDEX orders_updated ON orders (shop_id, environment, updated_at, id);
CREATE INDEX orders_client ON orders (client_id);

CREATE TABLE devices (
    id           TEXT PRIMARY KEY,
    shop_id      TEXT NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    environment  TEXT NOT NULL CHECK (environment IN ('live', 'test')),
    order_id     TEXT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    device_type  TEXT NOT NULL,
    brand        TEXT,
    model        TEXT,
    serial       TEXT,
    imei         TEXT,
    color        TEXT,
    condition    TEXT,
    fault        TEXT,
    status       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX devices_created ON devices (shop_id, environment, created_at, id);
CREATE INDEX devices_updated ON devices (shop_id, environment, updated_at, id);
CREATE INDEX devices_order ON devices (order_id);

CREATE TABLE idempotency_keys (
    shop_id        TEXT NOT NULL,
    environment    TEXT NOT NULL,
    idem_key       TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    status         INTEGER,
    body           TEXT,
    resource_path  TEXT,
    PRIMARY KEY (shop_id, environment, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (shop_id, environment, created_at);

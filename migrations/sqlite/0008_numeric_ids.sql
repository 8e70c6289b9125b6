-- The RepairShopr-compatible API (/api/v1/customers, /tickets,
-- /customer_assets) names clients, orders and devices by positive integers.
-- Each kind has one counter for the whole database, never reset, so an
-- integer id is unique per kind and never reused (not even after a delete or
-- a test-data reset). New columns are nullable; an instance of the previous
-- release inserting a row during a rolling upgrade leaves numeric_id NULL and
-- the trigger below fills it in.

CREATE TABLE numeric_id_sequences (
    kind     TEXT PRIMARY KEY CHECK (kind IN ('client', 'order', 'device')),
    last_id  INTEGER NOT NULL
);

ALTER TABLE clients ADD COLUMN numeric_id INTEGER;
ALTER TABLE clients ADD COLUMN mobile TEXT;
ALTER TABLE clients ADD COLUMN address_2 TEXT;
ALTER TABLE clients ADD COLUMN state TEXT;
ALTER TABLE orders ADD COLUMN numeric_id INTEGER;
ALTER TABLE orders ADD COLUMN problem_type TEXT;
ALTER TABLE devices ADD COLUMN numeric_id INTEGER;
ALTER TABLE devices ADD COLUMN name TEXT;

-- Devices that belong to a client without an order (a customer asset). A
-- table of their own: devices.order_id stays NOT NULL for the instances of
-- the previous release. The store reads both tables as one (the device's
-- client is its order's client, or client_id here).
CREATE TABLE client_devices (
    id           TEXT PRIMARY KEY,
    shop_id      TEXT NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    environment  TEXT NOT NULL CHECK (environment IN ('live', 'test')),
    client_id    TEXT NOT NULL REFERENCES clients (id),
    numeric_id   INTEGER,
    name         TEXT,
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
CREATE INDEX client_devices_client ON client_devices (client_id);
CREATE INDEX client_devices_updated ON client_devices (shop_id, environment, updated_at, id);

-- Existing rows, numbered in creation order.
UPDATE clients SET numeric_id = (
    SELECT n FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY created_at, id) AS n FROM clients) r
    WHERE r.id = clients.id);
UPDATE orders SET numeric_id = (
    SELECT n FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY created_at, id) AS n FROM orders) r
    WHERE r.id = orders.id);
UPDATE devices SET numeric_id = (
    SELECT n FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY created_at, id) AS n FROM devices) r
    WHERE r.id = devices.id);
INSERT INTO numeric_id_sequences (kind, last_id) VALUES
    ('client', (SELECT COALESCE(MAX(numeric_id), 0) FROM clients)),
    ('order', (SELECT COALESCE(MAX(numeric_id), 0) FROM orders)),
    ('device', (SELECT COALESCE(MAX(numeric_id), 0) FROM devices));

CREATE UNIQUE INDEX clients_numeric_id ON clients (numeric_id);
CREATE UNIQUE INDEX orders_numeric_id ON orders (numeric_id);
CREATE UNIQUE INDEX devices_numeric_id ON devices (numeric_id);
CREATE UNIQUE INDEX client_devices_numeric_id ON client_devices (numeric_id);
CREATE INDEX clients_scope_numeric ON clients (shop_id, environment, numeric_id);
CREATE INDEX orders_scope_numeric ON orders (shop_id, environment, numeric_id);

-- Every insert without a numeric_id takes the kind's next number (inside
-- the inserting transaction: SQLite has one writer at a time).
CREATE TRIGGER clients_numeric_id AFTER INSERT ON clients WHEN NEW.numeric_id IS NULL
BEGIN
    UPDATE numeric_id_sequences SET last_id = last_id + 1 WHERE kind = 'client';
    UPDATE clients SET numeric_id = (SELECT last_id FROM numeric_id_sequences WHERE kind = 'client')
        WHERE id = NEW.id;
END;
CREATE TRIGGER orders_numeric_id AFTER INSERT ON orders WHEN NEW.numeric_id IS NULL
BEGIN
    UPDATE numeric_id_sequences SET last_id = last_id + 1 WHERE kind = 'order';
    UPDATE orders SET numeric_id = (SELECT last_id FROM numeric_id_sequences WHERE kind = 'order')
        WHERE id = NEW.id;
END;
CREATE TRIGGER devices_numeric_id AFTER INSERT ON devices WHEN NEW.numeric_id IS NULL
BEGIN
    UPDATE numeric_id_sequences SET last_id = last_id + 1 WHERE kind = 'device';
    UPDATE devices SET numeric_id = (SELECT last_id FROM numeric_id_sequences WHERE kind = 'device')
        WHERE id = NEW.id;
END;
CREATE TRIGGER client_devices_numeric_id AFTER INSERT ON client_devices WHEN NEW.numeric_id IS NULL
BEGIN
    UPDATE numeric_id_sequences SET last_id = last_id + 1 WHERE kind = 'device';
    UPDATE client_devices SET numeric_id = (SELECT last_id FROM numeric_id_sequences WHERE kind = 'device')
        WHERE id = NEW.id;
END;

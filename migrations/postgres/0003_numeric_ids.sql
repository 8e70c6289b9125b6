-- The RepairShopr-compatible API (/api/v1/customers, /tickets,
-- /customer_assets) names clients, orders and devices by positive integers.
-- Each kind has one counter for the whole database, never reset, so an
-- integer id is unique per kind and never reused (not even after a delete or
-- a test-data reset). New columns are nullable; the BEFORE INSERT trigger
-- fills numeric_id in for every insert that leaves it out (this release's
-- and, during a rolling upgrade, the previous release's). The counter row is
-- locked until the inserting transaction ends, so numbers are taken in turn.
-- (migrations/sqlite 0008)

CREATE TABLE numeric_id_sequences (
    kind     TEXT COLLATE "C" PRIMARY KEY CHECK (kind IN ('client', 'order', 'device')),
    last_id  BIGINT NOT NULL
);

ALTER TABLE clients ADD COLUMN numeric_id BIGINT;
ALTER TABLE clients ADD COLUMN mobile TEXT;
ALTER TABLE clients ADD COLUMN address_2 TEXT;
ALTER TABLE clients ADD COLUMN state TEXT;
ALTER TABLE orders ADD COLUMN numeric_id BIGINT;
ALTER TABLE orders ADD COLUMN problem_type TEXT;
ALTER TABLE devices ADD COLUMN numeric_id BIGINT;
ALTER TABLE devices ADD COLUMN name TEXT;

-- Devices that belong to a client without an order (a customer asset). A
-- table of their own: devices.order_id stays NOT NULL for the instances of
-- the previous release. The store reads both tables as one.
CREATE TABLE client_devices (
    id           TEXT COLLATE "C" PRIMARY KEY,
    shop_id      TEXT COLLATE "C" NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    environment  TEXT NOT NULL CHECK (environment IN ('live', 'test')),
    client_id    TEXT COLLATE "C" NOT NULL REFERENCES clients (id),
    numeric_id   BIGINT,
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
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX client_devices_client ON client_devices (client_id);
CREATE INDEX client_devices_updated ON client_devices (shop_id, environment, updated_at, id);

-- Existing rows, numbered in creation order.
UPDATE clients SET numeric_id = r.n
    FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY created_at, id) AS n FROM clients) r
    WHERE r.id = clients.id;
UPDATE orders SET numeric_id = r.n
    FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY created_at, id) AS n FROM orders) r
    WHERE r.id = orders.id;
UPDATE devices SET numeric_id = r.n
    FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY created_at, id) AS n FROM devices) r
    WHERE r.id = devices.id;
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

CREATE FUNCTION assign_numeric_id() RETURNS trigger AS $$
BEGIN
    IF NEW.numeric_id IS NULL THEN
        UPDATE numeric_id_sequences SET last_id = last_id + 1 WHERE kind = TG_ARGV[0]
            RETURNING last_id INTO NEW.numeric_id;
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER clients_numeric_id BEFORE INSERT ON clients
    FOR EACH ROW EXECUTE FUNCTION assign_numeric_id('client');
CREATE TRIGGER orders_numeric_id BEFORE INSERT ON orders
    FOR EACH ROW EXECUTE FUNCTION assign_numeric_id('order');
CREATE TRIGGER devices_numeric_id BEFORE INSERT ON devices
    FOR EACH ROW EXECUTE FUNCTION assign_numeric_id('device');
CREATE TRIGGER client_devices_numeric_id BEFORE INSERT ON client_devices
    FOR EACH ROW EXECUTE FUNCTION assign_numeric_id('device');

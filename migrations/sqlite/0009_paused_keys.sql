-- Pausing an integration's keys (SPEC "Pausing an integration's keys"): a
-- paused key answers 403 key_paused until it is resumed. When, why and who
-- are kept on the key so the refusal can name them. Requests refused because
-- the key is paused are counted with the other refusals.

ALTER TABLE api_keys ADD COLUMN paused_at INTEGER;
ALTER TABLE api_keys ADD COLUMN paused_reason TEXT;
ALTER TABLE api_keys ADD COLUMN paused_by TEXT;
ALTER TABLE usage_totals ADD COLUMN rejected_paused INTEGER NOT NULL DEFAULT 0;

-- Leaked-key reports (SPEC "Leaked-key reports"): where a secret scanner
-- found the key in public, shown as a warning on the key and a banner on the
-- keys page. The first report is kept; the same report again changes nothing.

ALTER TABLE api_keys ADD COLUMN leaked_at INTEGER;
ALTER TABLE api_keys ADD COLUMN leak_url TEXT;
ALTER TABLE api_keys ADD COLUMN leak_source TEXT;

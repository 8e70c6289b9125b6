-- Rolling keys: the replacement a key was rolled to. A key is rolled at most
-- once (the store refuses a second roll while this is set).
ALTER TABLE api_keys ADD COLUMN rolled_to TEXT;

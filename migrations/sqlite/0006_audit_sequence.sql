-- Audit events take their position from a counter row bumped with
-- `UPDATE … RETURNING` in the writing transaction, instead of
-- `MAX(seq) + 1` (which two writers could compute alike). Existing events are
-- renumbered 1, 2, 3, … in the order they had, so `seq` can be unique.

UPDATE audit_events SET seq = r.n
FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY seq, at, id) AS n FROM audit_events) AS r
WHERE r.id = audit_events.id;

CREATE UNIQUE INDEX audit_events_seq ON audit_events (seq);

-- One row: the last `seq` handed out.
CREATE TABLE audit_sequence (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    last  INTEGER NOT NULL
);
INSERT INTO audit_sequence (id, last) SELECT 1, COALESCE(MAX(seq), 0) FROM audit_events;

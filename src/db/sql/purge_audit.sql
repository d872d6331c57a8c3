-- Audit rows older than ?1, oldest first, ?2 at most. Ordered by time, not by id, so the
-- rows are found through the time index: in id order SQLite scanned the whole table in
-- search of old rows, holding the write lock, on every pass that found none.
DELETE FROM audit_events WHERE id IN (
    SELECT id FROM audit_events WHERE at < ?1 ORDER BY at LIMIT ?2)

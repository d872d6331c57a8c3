-- The audit rows of the open requests due at ?1, at most ?2 of them, as actor ?3 with
-- action ?4: one insert from one read of the due rows. `INDEXED BY` the partial index of
-- open requests by deadline, which holds exactly the due rows at its start. Left to choose,
-- SQLite took the status index and walked every open request, due or not, inside the write
-- transaction; with `INDEXED BY`, a change that made the index unusable fails to prepare
-- instead of scanning.
INSERT INTO audit_events (request_id, at, actor, action, from_status, to_status)
SELECT id, ?1, ?3, ?4, status, 'expired'
FROM auth_requests INDEXED BY auth_requests_open_by_expiry
WHERE status IN ('pending', 'in_progress') AND expires_at <= ?1
LIMIT ?2

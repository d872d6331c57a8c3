-- Expires, as of ?1, exactly the requests whose audit rows expire_audit.sql just wrote (the
-- audit rows after id ?2, in the same transaction), each looked up by id. `+status` keeps
-- SQLite on the id: the guard alone would have it walk every open request through the
-- status index.
UPDATE auth_requests
SET status = 'expired', state_hash = NULL, pkce_verifier = NULL, updated_at = ?1,
    version = version + 1
WHERE id IN (SELECT request_id FROM audit_events WHERE id > ?2)
  AND +status IN ('pending', 'in_progress')
RETURNING id AS "id!: uuid::fmt::Hyphenated"

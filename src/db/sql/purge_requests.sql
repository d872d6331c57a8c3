-- Finished requests last changed before ?1, oldest first, ?2 at most; an approved request
-- whose tokens were obtained or refreshed since ?1 is in use and kept.
DELETE FROM auth_requests WHERE id IN (
    SELECT r.id FROM auth_requests r
    LEFT JOIN token_bundles t ON t.request_id = r.id
    WHERE r.status NOT IN ('pending', 'in_progress') AND r.updated_at < ?1
      AND (t.obtained_at IS NULL OR t.obtained_at < ?1)
    ORDER BY r.updated_at LIMIT ?2)

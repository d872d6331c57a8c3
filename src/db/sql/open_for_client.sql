-- Open requests of an enrolled client ($1), unexpired at $2, counted up to $3, with the
-- soonest of their deadlines. One read of the partial index of open requests by client,
-- which stops at the limit; the rows are taken soonest first (the index's own order, so no
-- sort), so the limit never cuts off the soonest deadline.
SELECT COUNT(*) AS "open!: i64", MIN(expires_at) AS "soonest: String"
FROM (SELECT expires_at FROM auth_requests
      WHERE client_id = ?1 AND status IN ('pending', 'in_progress') AND expires_at > ?2
      ORDER BY expires_at LIMIT ?3)

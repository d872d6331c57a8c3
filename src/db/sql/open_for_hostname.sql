-- open_for_client.sql for a hostname's ($1) requests made without a client.
SELECT COUNT(*) AS "open!: i64", MIN(expires_at) AS "soonest: String"
FROM (SELECT expires_at FROM auth_requests
      WHERE hostname = ?1 AND client_id IS NULL
        AND status IN ('pending', 'in_progress') AND expires_at > ?2
      ORDER BY expires_at LIMIT ?3)

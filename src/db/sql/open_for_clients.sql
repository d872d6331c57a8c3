-- open_for_hostnames.sql for the enrolled clients (ids) in the JSON array ?1, through the
-- partial index of open requests by client.
SELECT CAST(k.value AS TEXT) AS "key!: String",
       (SELECT COUNT(*) FROM (SELECT 1 FROM auth_requests
          WHERE client_id = k.value
            AND status IN ('pending', 'in_progress') AND expires_at > ?2
          ORDER BY expires_at LIMIT ?3)) AS "open!: i64",
       (SELECT expires_at FROM auth_requests
          WHERE client_id = k.value
            AND status IN ('pending', 'in_progress') AND expires_at > ?2
          ORDER BY expires_at LIMIT 1) AS "soonest: String"
FROM json_each(?1) AS k

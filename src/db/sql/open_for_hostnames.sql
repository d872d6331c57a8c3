-- For each hostname in the JSON array ?1: its open requests made without a client,
-- unexpired at ?2, counted up to ?3, and the soonest of their deadlines. Both read the
-- partial index of open requests by hostname in its own order (no sort), and the count
-- stops at the limit, so a hostname with thousands of open requests costs no more than one
-- with ten. One statement for the whole batch.
SELECT CAST(k.value AS TEXT) AS "key!: String",
       (SELECT COUNT(*) FROM (SELECT 1 FROM auth_requests
          WHERE hostname = k.value AND client_id IS NULL
            AND status IN ('pending', 'in_progress') AND expires_at > ?2
          ORDER BY expires_at LIMIT ?3)) AS "open!: i64",
       (SELECT expires_at FROM auth_requests
          WHERE hostname = k.value AND client_id IS NULL
            AND status IN ('pending', 'in_progress') AND expires_at > ?2
          ORDER BY expires_at LIMIT 1) AS "soonest: String"
FROM json_each(?1) AS k

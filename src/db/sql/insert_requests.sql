-- The requests of a create batch, from the JSON array ?1 (one object per request): one
-- statement, so a batch costs one trip to SQLite's thread instead of one per row.
INSERT INTO auth_requests
    (id, client_name, hostname, scopes, status, created_at, updated_at, expires_at,
     poll_token_hash, peer_addr, client_id, token_lifetime_secs)
SELECT value ->> 'id', value ->> 'client_name', value ->> 'hostname', value ->> 'scopes',
       'pending', value ->> 'created_at', value ->> 'created_at', value ->> 'expires_at',
       unhex(value ->> 'poll_token_hash'), value ->> 'peer_addr', value ->> 'client_id',
       value ->> 'token_lifetime_secs'
FROM json_each(?1)

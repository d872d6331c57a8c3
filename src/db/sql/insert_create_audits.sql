-- The audit rows of a create batch, from the JSON array ?1, in the order of the array.
INSERT INTO audit_events (request_id, at, actor, action, from_status, to_status, detail)
SELECT value ->> 'id', value ->> 'at', value ->> 'actor', value ->> 'action', NULL,
       'pending', value ->> 'detail'
FROM json_each(?1)
ORDER BY key

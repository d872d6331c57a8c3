-- Each enrolled client of a create batch (the JSON array ?1 of {client, at}) was last used
-- at its latest create.
UPDATE clients
SET last_used_at = (SELECT MAX(value ->> 'at') FROM json_each(?1)
                    WHERE value ->> 'client' = clients.id)
WHERE id IN (SELECT value ->> 'client' FROM json_each(?1))

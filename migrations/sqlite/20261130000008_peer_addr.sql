-- The address a request came from: the TCP peer, or, behind a trusted proxy, the client's
-- address from X-Forwarded-For. NULL for requests made before it was recorded.
ALTER TABLE auth_requests ADD COLUMN peer_addr TEXT;

-- When a bundle's refresh token stops working for good (UTC RFC 3339), or NULL when unknown.
-- Claude's refresh tokens have a fixed deadline from the login (`refresh_token_expires_in`),
-- which refreshing does not move: set at the exchange, never by a refresh. Existing bundles
-- get one at startup when `oauth.refresh_token_lifetime_secs` is set (the claude preset),
-- counted from their `obtained_at`.
ALTER TABLE token_bundles ADD COLUMN refresh_expires_at TEXT;

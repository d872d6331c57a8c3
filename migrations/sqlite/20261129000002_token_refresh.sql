-- Refreshing tokens through the router (POST /v1/token-requests/{id}/refresh).

-- Bumped by every refresh that stores new tokens. A refresh writes only if the generation it
-- started from is still current, so the stored refresh token is never rolled back to an
-- older one, and callers that waited on a refresh in flight can tell it happened.
ALTER TABLE token_bundles ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;

-- Set when the provider rejected the refresh token (invalid_grant and the like): the bundle
-- cannot be refreshed again, and later refresh calls answer 409 without calling upstream.
-- Holds the provider's reason.
ALTER TABLE token_bundles ADD COLUMN refresh_error TEXT;

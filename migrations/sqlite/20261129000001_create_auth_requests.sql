-- The router's whole state. Admins read these tables with the sqlite3 shell, so every
-- value is human-readable: ids are hyphenated UUID text, timestamps are UTC RFC 3339 text
-- of one fixed width ("2026-11-29T20:50:24.123Z", so text order is time order), and
-- statuses are words. Secrets the router only needs to recognise are stored as SHA-256.

-- One row per token request, from creation to its terminal status.
CREATE TABLE auth_requests (
    id              TEXT PRIMARY KEY NOT NULL,  -- UUID v4, the request_id of the API
    client_name     TEXT NOT NULL,              -- who asked, as the CLI said (1..=128 chars)
    hostname        TEXT NOT NULL,              -- from which machine (1..=253 chars)
    scopes          TEXT NOT NULL,              -- space-separated, as OAuth's scope parameter
    status          TEXT NOT NULL CHECK (status IN
                        ('pending', 'in_progress', 'approved', 'denied',
                         'cancelled', 'expired', 'error')),
    account_id      INTEGER CHECK (account_id BETWEEN 0 AND 4294967295),
                                                -- provider account chosen by the operator
    error           TEXT,                       -- why it ended in error or denied, if known
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,              -- last status or flow change
    expires_at      TEXT NOT NULL,              -- created_at + requests.ttl_secs
    poll_token_hash BLOB NOT NULL,              -- SHA-256 of the poll token; the token is never stored
    state_hash      BLOB,                       -- SHA-256 of the OAuth state the callback must bring;
                                                -- NULL when no callback is expected (used or not issued)
    pkce_verifier   TEXT,                       -- the PKCE verifier of the current login; NULL once done
    version         INTEGER NOT NULL DEFAULT 0  -- bumped by every change, so a flow step can
                                                -- check that nothing moved since it read the row
);

-- The reaper's scan: only open requests, by deadline. Partial, so it stays small however
-- many finished requests the table keeps.
CREATE INDEX auth_requests_open_by_expiry ON auth_requests (expires_at)
    WHERE status IN ('pending', 'in_progress');

-- The callback's lookup. Unique: one state names one request.
CREATE UNIQUE INDEX auth_requests_by_state ON auth_requests (state_hash)
    WHERE state_hash IS NOT NULL;

-- Listings, newest first, with or without a status filter.
CREATE INDEX auth_requests_by_created ON auth_requests (created_at);
CREATE INDEX auth_requests_by_status_created ON auth_requests (status, created_at);

-- The tokens of an approved request. Kept apart so that listing requests can never read
-- a token by accident, and so that dropping tokens never loses the request's history.
CREATE TABLE token_bundles (
    request_id    TEXT PRIMARY KEY NOT NULL REFERENCES auth_requests (id) ON DELETE CASCADE,
    access_token  TEXT NOT NULL,
    refresh_token TEXT,
    token_type    TEXT NOT NULL,   -- as the provider said, usually "bearer"
    scope         TEXT NOT NULL,   -- granted scopes, space-separated
    expires_at    TEXT,            -- when the access token expires (obtained_at + expires_in)
    obtained_at   TEXT NOT NULL
);

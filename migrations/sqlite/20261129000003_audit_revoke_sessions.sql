-- The operator console: the audit trail, the new terminal status `revoked`, and console
-- sessions.
--
-- SQLite cannot change a CHECK constraint in place, so auth_requests is rebuilt (create the
-- new table, copy, drop the old, rename). sqlx runs every SQLite migration inside one
-- transaction, where `PRAGMA foreign_keys = OFF` has no effect, so the drop's implicit
-- DELETE would cascade to token_bundles. The bundles are therefore set aside in a temporary
-- table first and put back after the rename. It all happens in sqlx's transaction: the
-- upgrade applies whole or not at all. A test upgrades a populated database and checks
-- that every request and token survives.

CREATE TEMP TABLE token_bundles_kept AS SELECT * FROM token_bundles;

CREATE TABLE auth_requests_new (
    id              TEXT PRIMARY KEY NOT NULL,
    client_name     TEXT NOT NULL,
    hostname        TEXT NOT NULL,
    scopes          TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN
                        ('pending', 'in_progress', 'approved', 'denied',
                         'cancelled', 'expired', 'error', 'revoked')),
    account_id      INTEGER CHECK (account_id BETWEEN 0 AND 4294967295),
    error           TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    poll_token_hash BLOB NOT NULL,
    state_hash      BLOB,
    pkce_verifier   TEXT,
    version         INTEGER NOT NULL DEFAULT 0
);
INSERT INTO auth_requests_new
    (id, client_name, hostname, scopes, status, account_id, error, created_at, updated_at,
     expires_at, poll_token_hash, state_hash, pkce_verifier, version)
SELECT id, client_name, hostname, scopes, status, account_id, error, created_at, updated_at,
       expires_at, poll_token_hash, state_hash, pkce_verifier, version
FROM auth_requests;
DROP TABLE auth_requests;
ALTER TABLE auth_requests_new RENAME TO auth_requests;

INSERT INTO token_bundles
    (request_id, access_token, refresh_token, token_type, scope, expires_at, obtained_at,
     generation, refresh_error)
SELECT request_id, access_token, refresh_token, token_type, scope, expires_at, obtained_at,
       generation, refresh_error
FROM temp.token_bundles_kept;
DROP TABLE temp.token_bundles_kept;

CREATE INDEX auth_requests_open_by_expiry ON auth_requests (expires_at)
    WHERE status IN ('pending', 'in_progress');
CREATE UNIQUE INDEX auth_requests_by_state ON auth_requests (state_hash)
    WHERE state_hash IS NOT NULL;
CREATE INDEX auth_requests_by_created ON auth_requests (created_at);
CREATE INDEX auth_requests_by_status_created ON auth_requests (status, created_at);

-- Who did what to which request, and when: one row per status change (and per refresh),
-- written in the same transaction as the change itself, so the trail cannot disagree with
-- the requests. No foreign key: the trail outlives the requests it describes. Never a
-- secret in it.
CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id  TEXT NOT NULL,
    at          TEXT NOT NULL,  -- UTC RFC 3339, like every timestamp here
    actor       TEXT NOT NULL,  -- client:<hostname>, admin, provider, reaper
    action      TEXT NOT NULL,  -- create, select_account, restore, approve, deny, cancel,
                                -- fail, expire, refresh, refresh_rejected, revoke, code
    from_status TEXT,           -- NULL for create
    to_status   TEXT NOT NULL,
    detail      TEXT            -- account chosen, provider error, …
);
CREATE INDEX audit_events_by_request ON audit_events (request_id, id);
CREATE INDEX audit_events_by_time ON audit_events (at);

-- Operator console sessions. The cookie holds a random token; only its hash is kept.
CREATE TABLE admin_sessions (
    token_hash BLOB PRIMARY KEY NOT NULL,  -- SHA-256 of the cookie's value
    csrf_token TEXT NOT NULL,              -- sent back in X-CSRF-Token on every change
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

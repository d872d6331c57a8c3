-- Enrolled clients: a verified identity for requests. The key is 256 random bits shown once;
-- only its SHA-256 is kept.
CREATE TABLE clients (
    id            TEXT PRIMARY KEY NOT NULL,      -- UUID
    name          TEXT NOT NULL UNIQUE,
    key_hash      BLOB NOT NULL UNIQUE,           -- SHA-256 of the client key
    scopes        TEXT NOT NULL DEFAULT '',       -- allowed scopes, space-separated; '' = any
    accounts      TEXT NOT NULL DEFAULT '',       -- allowed account ids, space-separated; '' = any
    auto_approve  INTEGER NOT NULL DEFAULT 0,     -- the policy approves its requests at once
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    last_used_at  TEXT
);

-- Which enrolled client made a request (NULL: unverified). No foreign key: a deleted
-- client's requests stay, with the name they were made under.
ALTER TABLE auth_requests ADD COLUMN client_id TEXT;

-- The open-request limit counts per enrolled client.
CREATE INDEX auth_requests_open_by_client ON auth_requests (client_id, expires_at)
    WHERE status IN ('pending', 'in_progress') AND client_id IS NOT NULL;

-- What operators set about the configured accounts (so it survives restarts), and how the
-- account's logins went, for the approval policy's health check.
CREATE TABLE account_state (
    account_id       INTEGER PRIMARY KEY NOT NULL,
    paused           INTEGER NOT NULL DEFAULT 0,
    last_failure_at  TEXT,
    last_failure     TEXT,   -- why the last login failed (control browser, provider, mismatch)
    updated_at       TEXT NOT NULL
);

-- Changes to clients and accounts, with who made them. Request changes are in audit_events.
CREATE TABLE admin_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,   -- admin
    subject     TEXT NOT NULL,   -- client:<id> or account:<id>
    action      TEXT NOT NULL,   -- add, rotate_key, disable, enable, update, remove, pause, resume
    detail      TEXT
);
CREATE INDEX admin_events_by_subject ON admin_events (subject, id);

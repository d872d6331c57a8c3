-- The PostgreSQL schema: the same tables, columns and meaning as the SQLite tree
-- (migrations/sqlite/, whose comments explain each column), at the state SQLite reached with
-- 20261206000004, in native types: uuid for ids, timestamptz for times, bytea for hashes,
-- jsonb for the webhook bodies. Sealed token values stay text, byte for byte, so `copy-db`
-- moves them between stores without the encryption key.

CREATE TABLE auth_requests (
    id                  uuid PRIMARY KEY,
    client_name         text NOT NULL,
    hostname            text NOT NULL,
    scopes              text NOT NULL,
    status              text NOT NULL CHECK (status IN
                            ('pending', 'in_progress', 'approved', 'denied',
                             'cancelled', 'expired', 'error', 'revoked')),
    account_id          bigint CHECK (account_id BETWEEN 0 AND 4294967295),
    error               text,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    expires_at          timestamptz NOT NULL,
    poll_token_hash     bytea NOT NULL,
    state_hash          bytea,
    pkce_verifier       text,
    version             bigint NOT NULL DEFAULT 0,
    peer_addr           text,
    client_id           uuid,
    token_lifetime_secs bigint CHECK (token_lifetime_secs > 0)
);
CREATE INDEX auth_requests_open_by_expiry ON auth_requests (expires_at)
    WHERE status IN ('pending', 'in_progress');
CREATE UNIQUE INDEX auth_requests_by_state ON auth_requests (state_hash)
    WHERE state_hash IS NOT NULL;
CREATE INDEX auth_requests_by_created ON auth_requests (created_at);
CREATE INDEX auth_requests_by_status_created ON auth_requests (status, created_at);
CREATE INDEX auth_requests_open_by_hostname ON auth_requests (hostname, expires_at)
    WHERE status IN ('pending', 'in_progress');
CREATE INDEX auth_requests_finished_by_updated ON auth_requests (updated_at)
    WHERE status NOT IN ('pending', 'in_progress');
CREATE INDEX auth_requests_open_by_client ON auth_requests (client_id, expires_at)
    WHERE status IN ('pending', 'in_progress') AND client_id IS NOT NULL;

CREATE TABLE token_bundles (
    request_id         uuid PRIMARY KEY REFERENCES auth_requests (id) ON DELETE CASCADE,
    access_token       text NOT NULL,
    refresh_token      text,
    token_type         text NOT NULL,
    scope              text NOT NULL,
    expires_at         timestamptz,
    obtained_at        timestamptz NOT NULL,
    generation         bigint NOT NULL DEFAULT 0,
    refresh_error      text,
    account_uuid       text,
    account_email      text,
    organization_uuid  text,
    organization_name  text,
    refresh_expires_at timestamptz,
    relogin_warned_at  timestamptz
);
CREATE INDEX token_bundles_relogin_due ON token_bundles (refresh_expires_at)
    WHERE relogin_warned_at IS NULL AND refresh_expires_at IS NOT NULL;

CREATE TABLE audit_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id  uuid NOT NULL,
    at          timestamptz NOT NULL,
    actor       text NOT NULL,
    action      text NOT NULL,
    from_status text,
    to_status   text NOT NULL,
    detail      text
);
CREATE INDEX audit_events_by_request ON audit_events (request_id, id);
CREATE INDEX audit_events_by_time ON audit_events (at);

CREATE TABLE admin_sessions (
    token_hash       bytea PRIMARY KEY,
    csrf_token       text NOT NULL,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    admin_token_hash bytea
);

CREATE TABLE webhook_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook         bigint NOT NULL,
    webhook_key     bytea NOT NULL,
    event_id        uuid NOT NULL,
    event_type      text NOT NULL,
    request_id      uuid,
    body            jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        bigint NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error      text,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (webhook, id)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (updated_at)
    WHERE status != 'pending';

CREATE TABLE clients (
    id                      uuid PRIMARY KEY,
    name                    text NOT NULL UNIQUE,
    key_hash                bytea NOT NULL UNIQUE,
    scopes                  text NOT NULL DEFAULT '',
    accounts                text NOT NULL DEFAULT '',
    auto_approve            boolean NOT NULL DEFAULT false,
    disabled                boolean NOT NULL DEFAULT false,
    created_at              timestamptz NOT NULL,
    last_used_at            timestamptz,
    max_token_lifetime_secs bigint NOT NULL DEFAULT 0
);

CREATE TABLE account_state (
    account_id            bigint PRIMARY KEY CHECK (account_id BETWEEN 0 AND 4294967295),
    paused                boolean NOT NULL DEFAULT false,
    last_failure_at       timestamptz,
    last_failure          text,
    updated_at            timestamptz NOT NULL,
    five_hour_utilization double precision,
    five_hour_resets_at   timestamptz,
    seven_day_utilization double precision,
    seven_day_resets_at   timestamptz,
    usage_read_at         timestamptz,
    usage_error           text,
    five_hour_warned_for  text,
    seven_day_warned_for  text
);

CREATE TABLE admin_events (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      timestamptz NOT NULL,
    actor   text NOT NULL,
    subject text NOT NULL,
    action  text NOT NULL,
    detail  text
);
CREATE INDEX admin_events_by_subject ON admin_events (subject, id);

CREATE TABLE router_settings (
    name  text PRIMARY KEY,
    value bytea NOT NULL
);

CREATE VIEW request_listing AS
SELECT r.id, r.client_id, r.client_name, r.hostname, r.scopes, r.status, r.account_id,
       r.error, r.created_at, r.updated_at, r.expires_at, r.peer_addr,
       t.account_email, t.organization_name, r.token_lifetime_secs, t.refresh_expires_at
FROM auth_requests r LEFT JOIN token_bundles t ON t.request_id = r.id;

-- Long-lived inference tokens: the lifetime a request asks for (seconds; NULL: the provider's
-- usual tokens), and the longest one each enrolled client may ask for (0: none).
ALTER TABLE auth_requests ADD COLUMN token_lifetime_secs INTEGER;
ALTER TABLE clients ADD COLUMN max_token_lifetime_secs INTEGER NOT NULL DEFAULT 0;

-- When `token.relogin_due` was queued for a bundle: it goes out once per bundle. The reaper
-- looks for bundles not yet warned of, by deadline.
ALTER TABLE token_bundles ADD COLUMN relogin_warned_at TEXT;
CREATE INDEX token_bundles_relogin_due ON token_bundles (refresh_expires_at)
    WHERE relogin_warned_at IS NULL AND refresh_expires_at IS NOT NULL;

-- Each account's last usage reading (utilization 0-100 per window, and when the window
-- resets), when it was read, and the last reading that failed. `*_warned_for` is the
-- `resets_at` of the window for which `account.quota_high` went out: once per window per
-- reset.
ALTER TABLE account_state ADD COLUMN five_hour_utilization REAL;
ALTER TABLE account_state ADD COLUMN five_hour_resets_at TEXT;
ALTER TABLE account_state ADD COLUMN seven_day_utilization REAL;
ALTER TABLE account_state ADD COLUMN seven_day_resets_at TEXT;
ALTER TABLE account_state ADD COLUMN usage_read_at TEXT;
ALTER TABLE account_state ADD COLUMN usage_error TEXT;
ALTER TABLE account_state ADD COLUMN five_hour_warned_for TEXT;
ALTER TABLE account_state ADD COLUMN seven_day_warned_for TEXT;

-- The listings show the lifetime a request asks for, so an operator sees it before approving,
-- and when an approved one's refresh token dies, so the console can mark it.
DROP VIEW request_listing;
CREATE VIEW request_listing AS
SELECT r.id, r.client_id, r.client_name, r.hostname, r.scopes, r.status, r.account_id,
       r.error, r.created_at, r.updated_at, r.expires_at, r.peer_addr,
       t.account_email, t.organization_name, r.token_lifetime_secs, t.refresh_expires_at
FROM auth_requests r LEFT JOIN token_bundles t ON t.request_id = r.id;

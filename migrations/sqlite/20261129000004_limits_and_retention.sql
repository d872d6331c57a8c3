-- Indexes for the hardening work.

-- The per-hostname limit counts a hostname's open requests on every create.
CREATE INDEX auth_requests_open_by_hostname ON auth_requests (hostname, expires_at)
    WHERE status IN ('pending', 'in_progress');

-- Retention deletes finished requests by age, oldest first, in small batches.
CREATE INDEX auth_requests_finished_by_updated ON auth_requests (updated_at)
    WHERE status NOT IN ('pending', 'in_progress');

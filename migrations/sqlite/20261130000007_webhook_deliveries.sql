-- The webhook outbox: one row per event and webhook, inserted in the same transaction as the
-- change it reports, so an event exists if and only if its change committed. One sender task
-- delivers the rows of each webhook in id order, retrying with backoff, and marks each
-- 'delivered' or 'failed'. A restart resumes whatever is still 'pending'.
CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook         INTEGER NOT NULL,  -- index in [[notify.webhooks]]
    webhook_key     BLOB NOT NULL,     -- SHA-256 of the webhook's URL: a row is only sent there
    event_id        TEXT NOT NULL,     -- the event's UUID (X-Auth-Router-Delivery)
    event_type      TEXT NOT NULL,     -- request.pending, request.approved, …, test
    request_id      TEXT,              -- the request it is about (NULL for test events)
    body            TEXT NOT NULL,     -- exactly what is POSTed; never a token or a secret
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,              -- the receiver's status or the transport error
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

-- The sender's question: each webhook's oldest pending row.
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (webhook, id)
    WHERE status = 'pending';

-- Retention prunes finished rows by age.
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (updated_at)
    WHERE status != 'pending';

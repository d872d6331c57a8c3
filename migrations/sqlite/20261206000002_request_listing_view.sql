-- One column list for every listing of requests (the API's, the console's): a request and,
-- for an approved one, whose tokens it got. SQLite flattens the view into each query, so the
-- listings keep their indexes.
CREATE VIEW request_listing AS
SELECT r.id, r.client_id, r.client_name, r.hostname, r.scopes, r.status, r.account_id,
       r.error, r.created_at, r.updated_at, r.expires_at, r.peer_addr,
       t.account_email, t.organization_name
FROM auth_requests r LEFT JOIN token_bundles t ON t.request_id = r.id;

-- A console session belongs to the admin token it was signed in with: changing the token
-- ends every session made with the old one. Sessions from before this column have none,
-- so they end too, and their operators sign in again.
ALTER TABLE admin_sessions ADD COLUMN admin_token_hash BLOB;  -- SHA-256 of the admin token

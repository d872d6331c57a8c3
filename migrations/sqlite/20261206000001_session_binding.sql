-- Console sessions were bound to SHA-256 of the admin token, so anyone holding the file could
-- test guesses of the token at hash speed. They are now bound to an Argon2id of it, salted
-- with a value kept here, once per database. Sessions bound the old way end (their operators
-- sign in once more), and no cheap hash of the admin token stays in the file.
CREATE TABLE router_settings (
    name  TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
);
DELETE FROM admin_sessions;

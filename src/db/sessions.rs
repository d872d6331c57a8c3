//! `admin_sessions`: operator console sign-ins. Only the hash of the cookie is stored, with
//! the binding to the admin token it was signed in with (the `admin_token_hash` column: an
//! Argon2id of it, see [`crate::domain::secret::session_binding`]): a session is only found
//! while that is still the admin token.

use chrono::{DateTime, Utc};

use super::pg::store::admin;
use super::StoreError;
use super::{Backend, Db};
use crate::domain::time::to_db;

pub async fn create(
    db: &Db,
    token_hash: &[u8],
    csrf_token: &str,
    admin_token_hash: &[u8],
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        let create = admin::create_session(
            pool,
            token_hash,
            csrf_token,
            admin_token_hash,
            now,
            expires_at,
        );
        return Ok(create.await?);
    }
    let (now, expires_at) = (to_db(now), to_db(expires_at));
    sqlx::query!(
        "INSERT INTO admin_sessions (token_hash, csrf_token, admin_token_hash, created_at, expires_at)
         VALUES (?, ?, ?, ?, ?)",
        token_hash,
        csrf_token,
        admin_token_hash,
        now,
        expires_at,
    )
    .execute(&db.sqlite()?.write)
    .await?;
    Ok(())
}

/// The session's CSRF token, if the session exists, has not expired, and was signed in
/// with the current admin token.
pub async fn find(
    db: &Db,
    token_hash: &[u8],
    admin_token_hash: &[u8],
    now: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        return Ok(admin::find_session(pool, token_hash, admin_token_hash, now).await?);
    }
    let now = to_db(now);
    sqlx::query_scalar!(
        "SELECT csrf_token FROM admin_sessions
         WHERE token_hash = ? AND admin_token_hash = ? AND expires_at > ?",
        token_hash,
        admin_token_hash,
        now,
    )
    .fetch_all(&db.sqlite()?.read)
    .await
    .map(|rows| rows.into_iter().next())
    .map_err(Into::into)
}

pub async fn delete(db: &Db, token_hash: &[u8]) -> Result<(), StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        return Ok(admin::delete_session(pool, token_hash).await?);
    }
    sqlx::query!(
        "DELETE FROM admin_sessions WHERE token_hash = ?",
        token_hash
    )
    .execute(&db.sqlite()?.write)
    .await?;
    Ok(())
}

/// Drops expired sessions; the reaper calls it on every pass.
pub async fn delete_expired(db: &Db, now: DateTime<Utc>) -> Result<u64, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        return Ok(admin::delete_expired_sessions(pool, now).await?);
    }
    let now = to_db(now);
    let done = sqlx::query!("DELETE FROM admin_sessions WHERE expires_at <= ?", now)
        .execute(&db.sqlite()?.write)
        .await?;
    Ok(done.rows_affected())
}

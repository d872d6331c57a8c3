//! What the router keeps for its operators: console sessions, its own settings, and the
//! trail of changes to clients and accounts (`admin_events`).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

/// The value of setting `name`, storing `fresh` first when there is none: every router on
/// the database ends up with the first value written.
pub async fn setting_or_insert(
    pool: &PgPool,
    name: &str,
    fresh: &[u8],
) -> Result<Vec<u8>, crate::Error> {
    sqlx::query!(
        "INSERT INTO router_settings (name, value) VALUES ($1, $2)
         ON CONFLICT (name) DO NOTHING",
        name,
        fresh,
    )
    .execute(pool)
    .await?;
    sqlx::query_scalar!("SELECT value FROM router_settings WHERE name = $1", name)
        .fetch_one(pool)
        .await
        .map_err(crate::Error::from)
}

pub async fn create_session(
    pool: &PgPool,
    token_hash: &[u8],
    csrf_token: &str,
    admin_token_hash: &[u8],
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), crate::Error> {
    sqlx::query!(
        "INSERT INTO admin_sessions (token_hash, csrf_token, admin_token_hash, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
        token_hash,
        csrf_token,
        admin_token_hash,
        now,
        expires_at,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// The session's CSRF token, if it exists, has not expired, and is bound to the admin token.
pub async fn find_session(
    pool: &PgPool,
    token_hash: &[u8],
    admin_token_hash: &[u8],
    now: DateTime<Utc>,
) -> Result<Option<String>, crate::Error> {
    sqlx::query_scalar!(
        "SELECT csrf_token FROM admin_sessions
         WHERE token_hash = $1 AND admin_token_hash = $2 AND expires_at > $3",
        token_hash,
        admin_token_hash,
        now,
    )
    .fetch_optional(pool)
    .await
    .map_err(crate::Error::from)
}

pub async fn delete_session(pool: &PgPool, token_hash: &[u8]) -> Result<(), crate::Error> {
    sqlx::query!(
        "DELETE FROM admin_sessions WHERE token_hash = $1",
        token_hash
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn delete_expired_sessions(
    pool: &PgPool,
    now: DateTime<Utc>,
) -> Result<u64, crate::Error> {
    let done = sqlx::query!("DELETE FROM admin_sessions WHERE expires_at <= $1", now)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// A change to a client or an account, in the change's transaction.
pub async fn admin_event(
    conn: &mut PgConnection,
    at: DateTime<Utc>,
    subject: &str,
    action: &str,
    detail: Option<&str>,
) -> Result<(), crate::Error> {
    sqlx::query!(
        "INSERT INTO admin_events (at, actor, subject, action, detail)
         VALUES ($1, 'admin', $2, $3, $4)",
        at,
        subject,
        action,
        detail,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// One change to a client or an account.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminEventRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub subject: String,
    pub action: String,
    pub detail: Option<String>,
}

/// The newest `limit` changes, newest first; only `subject`'s when given.
pub async fn admin_events(
    pool: &PgPool,
    subject: Option<&str>,
    limit: i64,
) -> Result<Vec<AdminEventRow>, crate::Error> {
    sqlx::query_as!(
        AdminEventRow,
        "SELECT id, at, actor, subject, action, detail FROM admin_events
         WHERE $1::text IS NULL OR subject = $1 ORDER BY id DESC LIMIT $2",
        subject,
        limit,
    )
    .fetch_all(pool)
    .await
    .map_err(crate::Error::from)
}

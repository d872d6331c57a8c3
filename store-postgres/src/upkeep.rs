//! What the reaper keeps up besides expiry: retention's deletes, refresh deadlines and the
//! re-login warnings. Each delete removes at most `batch` rows, oldest first.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Finished requests last changed before `before` (their tokens go by the cascade); an
/// approved request whose tokens were obtained or refreshed since is in use and kept.
pub async fn purge_requests(
    pool: &PgPool,
    before: DateTime<Utc>,
    batch: i64,
) -> Result<u64, crate::Error> {
    let done = sqlx::query!(
        "DELETE FROM auth_requests WHERE id IN (
             SELECT r.id FROM auth_requests r
             LEFT JOIN token_bundles t ON t.request_id = r.id
             WHERE r.status NOT IN ('pending', 'in_progress') AND r.updated_at < $1
               AND (t.obtained_at IS NULL OR t.obtained_at < $1)
             ORDER BY r.updated_at LIMIT $2)",
        before,
        batch,
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

pub async fn purge_audit(
    pool: &PgPool,
    before: DateTime<Utc>,
    batch: i64,
) -> Result<u64, crate::Error> {
    let done = sqlx::query!(
        "DELETE FROM audit_events WHERE id IN (
             SELECT id FROM audit_events WHERE at < $1 ORDER BY at LIMIT $2)",
        before,
        batch,
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

pub async fn purge_deliveries(
    pool: &PgPool,
    before: DateTime<Utc>,
    batch: i64,
) -> Result<u64, crate::Error> {
    let done = sqlx::query!(
        "DELETE FROM webhook_deliveries WHERE id IN (
             SELECT id FROM webhook_deliveries
             WHERE status != 'pending' AND updated_at < $1 ORDER BY updated_at LIMIT $2)",
        before,
        batch,
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Gives every bundle with a refresh token but no deadline one `lifetime_secs` after its
/// `obtained_at`.
pub async fn backfill_refresh_deadlines(
    pool: &PgPool,
    lifetime_secs: i64,
) -> Result<u64, crate::Error> {
    let done = sqlx::query!(
        "UPDATE token_bundles
         SET refresh_expires_at = obtained_at + make_interval(secs => $1::bigint)
         WHERE refresh_expires_at IS NULL AND refresh_token IS NOT NULL",
        lifetime_secs,
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// A bundle whose refresh token dies soon and that was not warned of.
#[derive(Debug, Clone, PartialEq)]
pub struct ReloginRow {
    pub request_id: Uuid,
    pub client_id: Option<Uuid>,
    pub account_id: Option<i64>,
    pub refresh_expires_at: DateTime<Utc>,
}

pub async fn relogin_due(
    pool: &PgPool,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<ReloginRow>, crate::Error> {
    sqlx::query_as!(
        ReloginRow,
        r#"SELECT t.request_id, r.client_id, r.account_id,
                  t.refresh_expires_at AS "refresh_expires_at!"
           FROM token_bundles t JOIN auth_requests r ON r.id = t.request_id
           WHERE t.relogin_warned_at IS NULL AND t.refresh_expires_at IS NOT NULL
             AND t.refresh_expires_at <= $1 AND t.refresh_token IS NOT NULL
             AND t.refresh_error IS NULL AND r.status = 'approved'
           ORDER BY t.refresh_expires_at LIMIT $2"#,
        before,
        limit,
    )
    .fetch_all(pool)
    .await
    .map_err(crate::Error::from)
}

/// Marks bundle `request_id` as warned of; `false` when it already was.
pub async fn mark_warned(
    conn: &mut PgConnection,
    request_id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, crate::Error> {
    let done = sqlx::query!(
        "UPDATE token_bundles SET relogin_warned_at = $1
         WHERE request_id = $2 AND relogin_warned_at IS NULL",
        now,
        request_id,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

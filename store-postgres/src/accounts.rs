//! `account_state`: what the router knows of each provider account besides its config.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

/// Notes a failed login of account `id`, inside the transaction that records the failure.
pub async fn record_failure(
    conn: &mut PgConnection,
    id: i64,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<(), crate::Error> {
    sqlx::query!(
        "INSERT INTO account_state (account_id, last_failure_at, last_failure, updated_at)
         VALUES ($1, $2, $3, $2)
         ON CONFLICT (account_id) DO UPDATE SET last_failure_at = $2, last_failure = $3,
             updated_at = $2",
        id,
        at,
        reason,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Pauses or resumes account `id`, with its trail row. `false` when it already was.
pub async fn set_paused(
    pool: &PgPool,
    id: i64,
    paused: bool,
    now: DateTime<Utc>,
) -> Result<bool, crate::Error> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query!(
        "INSERT INTO account_state (account_id, paused, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (account_id) DO UPDATE SET paused = $2, updated_at = $3
         WHERE account_state.paused != $2",
        id,
        paused,
        now,
    )
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    let action = if paused { "pause" } else { "resume" };
    crate::admin::admin_event(&mut tx, now, &format!("account:{id}"), action, None).await?;
    tx.commit().await?;
    Ok(true)
}

pub async fn is_paused(pool: &PgPool, id: i64) -> Result<bool, crate::Error> {
    let paused = sqlx::query_scalar!("SELECT paused FROM account_state WHERE account_id = $1", id)
        .fetch_optional(pool)
        .await?;
    Ok(paused.unwrap_or(false))
}

/// One account's stored state.
#[derive(Debug, Clone, PartialEq)]
pub struct StateRow {
    pub account_id: i64,
    pub paused: bool,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_failure: Option<String>,
    pub five_hour_utilization: Option<f64>,
    pub five_hour_resets_at: Option<DateTime<Utc>>,
    pub seven_day_utilization: Option<f64>,
    pub seven_day_resets_at: Option<DateTime<Utc>>,
    pub usage_read_at: Option<DateTime<Utc>>,
    pub usage_error: Option<String>,
}

pub async fn states(pool: &PgPool) -> Result<Vec<StateRow>, crate::Error> {
    sqlx::query_as!(
        StateRow,
        "SELECT account_id, paused, last_failure_at, last_failure, five_hour_utilization,
                five_hour_resets_at, seven_day_utilization, seven_day_resets_at,
                usage_read_at, usage_error
         FROM account_state"
    )
    .fetch_all(pool)
    .await
    .map_err(crate::Error::from)
}

/// Per account: its live tokens, the soonest of their refresh deadlines, and its last
/// approval.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveRow {
    pub account_id: i64,
    pub live_tokens: i64,
    pub soonest: Option<DateTime<Utc>>,
}

pub async fn live(pool: &PgPool) -> Result<Vec<LiveRow>, crate::Error> {
    sqlx::query_as!(
        LiveRow,
        r#"SELECT r.account_id AS "account_id!", COUNT(*) AS "live_tokens!",
                  MIN(t.refresh_expires_at) AS soonest
           FROM auth_requests r JOIN token_bundles t ON t.request_id = r.id
           WHERE r.status = 'approved' AND t.refresh_error IS NULL AND r.account_id IS NOT NULL
           GROUP BY r.account_id"#
    )
    .fetch_all(pool)
    .await
    .map_err(crate::Error::from)
}

pub async fn last_approved(pool: &PgPool) -> Result<Vec<(i64, DateTime<Utc>)>, crate::Error> {
    let rows = sqlx::query!(
        r#"SELECT r.account_id AS "account_id!", MAX(a.at) AS "at!"
           FROM audit_events a JOIN auth_requests r ON r.id = a.request_id
           WHERE a.action = 'approve' AND r.account_id IS NOT NULL
           GROUP BY r.account_id"#
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.account_id, r.at)).collect())
}

/// One usage window as read: utilization and when it resets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UsageWindow {
    pub utilization: Option<f64>,
    pub resets_at: Option<DateTime<Utc>>,
}

/// Stores a reading of account `id` and clears its usage error.
pub async fn record_usage(
    conn: &mut PgConnection,
    id: i64,
    five_hour: UsageWindow,
    seven_day: UsageWindow,
    now: DateTime<Utc>,
) -> Result<(), crate::Error> {
    sqlx::query!(
        "INSERT INTO account_state (account_id, five_hour_utilization, five_hour_resets_at,
             seven_day_utilization, seven_day_resets_at, usage_read_at, usage_error, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, NULL, $6)
         ON CONFLICT (account_id) DO UPDATE SET five_hour_utilization = $2,
             five_hour_resets_at = $3, seven_day_utilization = $4, seven_day_resets_at = $5,
             usage_read_at = $6, usage_error = NULL, updated_at = $6",
        id,
        five_hour.utilization,
        five_hour.resets_at,
        seven_day.utilization,
        seven_day.resets_at,
        now,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Notes that `window` (`five_hour` or `seven_day`) of account `id` was warned of for
/// `reset_key`; `false` when it already was for that reset.
pub async fn mark_quota_warned(
    conn: &mut PgConnection,
    id: i64,
    window: &str,
    reset_key: &str,
) -> Result<bool, crate::Error> {
    let done = sqlx::query!(
        "UPDATE account_state
         SET five_hour_warned_for =
                 CASE WHEN $3 = 'five_hour' THEN $1 ELSE five_hour_warned_for END,
             seven_day_warned_for =
                 CASE WHEN $3 = 'seven_day' THEN $1 ELSE seven_day_warned_for END
         WHERE account_id = $2
           AND (CASE WHEN $3 = 'five_hour' THEN five_hour_warned_for
                     ELSE seven_day_warned_for END) IS DISTINCT FROM $1",
        reset_key,
        id,
        window,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records why account `id`'s usage could not be read.
pub async fn record_usage_error(
    pool: &PgPool,
    id: i64,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), crate::Error> {
    sqlx::query!(
        "INSERT INTO account_state (account_id, usage_error, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (account_id) DO UPDATE SET usage_error = $2, updated_at = $3",
        id,
        error,
        now,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// The (sealed) access tokens of account `id` still valid at `now`, newest first, at most 8.
pub async fn live_access_tokens(
    pool: &PgPool,
    id: i64,
    now: DateTime<Utc>,
) -> Result<Vec<(uuid::Uuid, String)>, crate::Error> {
    let rows = sqlx::query!(
        "SELECT r.id, t.access_token
         FROM auth_requests r JOIN token_bundles t ON t.request_id = r.id
         WHERE r.account_id = $1 AND r.status = 'approved'
           AND (t.expires_at IS NULL OR t.expires_at > $2)
         ORDER BY t.obtained_at DESC LIMIT 8",
        id,
        now,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.access_token)).collect())
}

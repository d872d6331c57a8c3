//! `account_state`: what the router knows of each provider account besides its config.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

/// Notes a failed login of account `id`, inside the transaction that records the failure.
pub async fn record_failure(
    conn: &mut PgConnection,
    id: i64,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
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
) -> Result<bool, sqlx::Error> {
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

pub async fn is_paused(pool: &PgPool, id: i64) -> Result<bool, sqlx::Error> {
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

pub async fn states(pool: &PgPool) -> Result<Vec<StateRow>, sqlx::Error> {
    sqlx::query_as!(
        StateRow,
        "SELECT account_id, paused, last_failure_at, last_failure, five_hour_utilization,
                five_hour_resets_at, seven_day_utilization, seven_day_resets_at,
                usage_read_at, usage_error
         FROM account_state"
    )
    .fetch_all(pool)
    .await
}

/// Per account: its live tokens, the soonest of their refresh deadlines, and its last
/// approval.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveRow {
    pub account_id: i64,
    pub live_tokens: i64,
    pub soonest: Option<DateTime<Utc>>,
}

pub async fn live(pool: &PgPool) -> Result<Vec<LiveRow>, sqlx::Error> {
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
}

pub async fn last_approved(pool: &PgPool) -> Result<Vec<(i64, DateTime<Utc>)>, sqlx::Error> {
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

//! `account_state`: what the router knows of each provider account besides its config.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

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

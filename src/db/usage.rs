//! Each account's usage reading, in `account_state`, and the access tokens it is read with.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::Value;
use uuid::Uuid;

use super::commit::WriteTx;
use super::pg::store::accounts;
use super::{Backend, Db, StoreError, ACCESS_TOKEN};
use crate::domain::event::EventType;
use crate::domain::time::to_db;
use crate::domain::usage::Reading;

/// A window at or over the warning threshold: `account.quota_high` goes out for it unless it
/// already did for the same reset.
pub struct Crossed {
    /// `five_hour` or `seven_day`.
    pub window: &'static str,
    /// The window's `resets_at` as stored (or `unknown`): one warning per value.
    pub reset_key: String,
    /// The event's fields.
    pub detail: Value,
}

/// Stores a reading of account `id` and clears its usage error; queues `account.quota_high`
/// for each `crossed` window not yet warned of for that reset. One transaction, so a warning
/// goes out once however many routers or restarts read the same window.
pub async fn record(
    db: &Db,
    id: u32,
    reading: &Reading,
    crossed: &[Crossed],
    now: DateTime<Utc>,
) -> Result<u32, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        return record_pg(db, pool, id, reading, crossed, now).await;
    }
    let mut tx = WriteTx::begin(db).await?;
    let at = to_db(now);
    let (five, seven) = (reading.five_hour, reading.seven_day);
    let (five_util, five_resets) = (
        five.map(|w| w.utilization),
        five.and_then(|w| w.resets_at).map(to_db),
    );
    let (seven_util, seven_resets) = (
        seven.map(|w| w.utilization),
        seven.and_then(|w| w.resets_at).map(to_db),
    );
    sqlx::query!(
        "INSERT INTO account_state (account_id, five_hour_utilization, five_hour_resets_at,
             seven_day_utilization, seven_day_resets_at, usage_read_at, usage_error, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?6)
         ON CONFLICT (account_id) DO UPDATE SET five_hour_utilization = ?2,
             five_hour_resets_at = ?3, seven_day_utilization = ?4, seven_day_resets_at = ?5,
             usage_read_at = ?6, usage_error = NULL, updated_at = ?6",
        id,
        five_util,
        five_resets,
        seven_util,
        seven_resets,
        at,
    )
    .execute(tx.conn())
    .await?;
    let mut warned = 0;
    for c in crossed {
        let done = sqlx::query!(
            "UPDATE account_state
             SET five_hour_warned_for =
                     CASE WHEN ?3 = 'five_hour' THEN ?1 ELSE five_hour_warned_for END,
                 seven_day_warned_for =
                     CASE WHEN ?3 = 'seven_day' THEN ?1 ELSE seven_day_warned_for END
             WHERE account_id = ?2
               AND (CASE WHEN ?3 = 'five_hour' THEN five_hour_warned_for
                         ELSE seven_day_warned_for END) IS NOT ?1",
            c.reset_key,
            id,
            c.window,
        )
        .execute(tx.conn())
        .await?
        .rows_affected();
        if done == 1 {
            tx.raise_with(None, EventType::QuotaHigh, now, Some(&c.detail))
                .await?;
            warned += 1;
        }
    }
    tx.commit().await?;
    Ok(warned)
}

/// Records why account `id`'s usage could not be read; its last reading stays as it was.
pub async fn record_error(
    db: &Db,
    id: u32,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        let id = i64::from(id);
        return Ok(accounts::record_usage_error(pool, id, error, now).await?);
    }
    let mut tx = WriteTx::begin(db).await?;
    let at = to_db(now);
    sqlx::query!(
        "INSERT INTO account_state (account_id, usage_error, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (account_id) DO UPDATE SET usage_error = ?2, updated_at = ?3",
        id,
        error,
        at,
    )
    .execute(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The access tokens of account `id` that are still valid at `now`, newest first: what its
/// usage is read with, one after another if the provider refuses one.
pub async fn live_access_tokens(
    db: &Db,
    id: u32,
    now: DateTime<Utc>,
) -> Result<Vec<(Uuid, SecretString)>, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        let rows = accounts::live_access_tokens(pool, i64::from(id), now).await?;
        return rows
            .into_iter()
            .map(|(id, token)| Ok((id, db.open(ACCESS_TOKEN, id, &token)?)))
            .collect();
    }
    let now = to_db(now);
    let rows = sqlx::query!(
        r#"SELECT r.id AS "id!: uuid::fmt::Hyphenated", t.access_token
           FROM auth_requests r JOIN token_bundles t ON t.request_id = r.id
           WHERE r.account_id = ?1 AND r.status = 'approved'
             AND (t.expires_at IS NULL OR t.expires_at > ?2)
           ORDER BY t.obtained_at DESC LIMIT 8"#,
        id,
        now,
    )
    .fetch_all(&db.sqlite()?.read)
    .await?;
    rows.into_iter()
        .map(|r| {
            let id = r.id.into_uuid();
            Ok((id, db.open(ACCESS_TOKEN, id, &r.access_token)?))
        })
        .collect()
}

/// [`record`] on PostgreSQL: the same reading, the same once-per-reset warnings.
async fn record_pg(
    db: &Db,
    pool: &sqlx::PgPool,
    id: u32,
    reading: &Reading,
    crossed: &[Crossed],
    now: DateTime<Utc>,
) -> Result<u32, StoreError> {
    let mut tx = WriteTx::begin_pg(db, pool).await?;
    let window = |w: Option<crate::domain::usage::Window>| accounts::UsageWindow {
        utilization: w.map(|w| w.utilization),
        resets_at: w.and_then(|w| w.resets_at),
    };
    let (five, seven) = (window(reading.five_hour), window(reading.seven_day));
    let id = i64::from(id);
    accounts::record_usage(tx.conn(), id, five, seven, now).await?;
    let mut warned = 0;
    for c in crossed {
        if accounts::mark_quota_warned(tx.conn(), id, c.window, &c.reset_key).await? {
            tx.raise_with(None, EventType::QuotaHigh, now, Some(&c.detail))
                .await?;
            warned += 1;
        }
    }
    tx.commit().await?;
    Ok(warned)
}

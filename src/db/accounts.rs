//! `account_state`: what operators set about the configured accounts (paused), and how their
//! logins went; plus what the requests say about each account (live tokens, last approval).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;

use super::clients::admin_event;
use super::pg::store::accounts::{LiveRow, StateRow};
use super::StoreError;
use super::{pg, Backend, Db};
use crate::domain::time::to_db;
use crate::domain::usage::{Reading, Window};

/// What the router knows of one account.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub paused: bool,
    /// Approved requests whose refresh token the provider has not refused.
    pub live_tokens: i64,
    pub last_approved_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_failure: Option<String>,
    /// The earliest refresh-token deadline among its live tokens: when someone must log it in
    /// again at the latest.
    pub soonest_relogin_at: Option<DateTime<Utc>>,
    /// Its last usage reading (no reading: both windows `None`).
    pub usage: Reading,
    pub usage_read_at: Option<DateTime<Utc>>,
    /// Why the last usage reading failed, when it did.
    pub usage_error: Option<String>,
}

/// Pauses or resumes account `id`, with its trail row. `false` when it already was.
pub async fn set_paused(
    db: &Db,
    id: u32,
    paused: bool,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        return Ok(pg::store::accounts::set_paused(pool, i64::from(id), paused, now).await?);
    }
    let mut tx = db.sqlite()?.begin().await?;
    let at = to_db(now);
    let done = sqlx::query!(
        "INSERT INTO account_state (account_id, paused, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (account_id) DO UPDATE SET paused = ?2, updated_at = ?3
         WHERE paused != ?2",
        id,
        paused,
        at,
    )
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    let action = if paused { "pause" } else { "resume" };
    admin_event(&mut tx, now, &format!("account:{id}"), action, None).await?;
    tx.commit().await?;
    Ok(true)
}

/// Whether account `id` is paused.
pub async fn is_paused(db: &Db, id: u32) -> Result<bool, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        return Ok(pg::store::accounts::is_paused(pool, i64::from(id)).await?);
    }
    let paused = sqlx::query_scalar!(
        r#"SELECT paused AS "paused: bool" FROM account_state WHERE account_id = ?"#,
        id
    )
    .fetch_all(&db.sqlite()?.read)
    .await?
    .into_iter()
    .next();
    Ok(paused.unwrap_or(false))
}

/// Notes a failed login of account `id`, inside the transaction that records the failure.
pub async fn record_failure(
    conn: &mut SqliteConnection,
    id: u32,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let at = to_db(at);
    sqlx::query!(
        "INSERT INTO account_state (account_id, last_failure_at, last_failure, updated_at)
         VALUES (?1, ?2, ?3, ?2)
         ON CONFLICT (account_id) DO UPDATE SET last_failure_at = ?2, last_failure = ?3,
             updated_at = ?2",
        id,
        at,
        reason,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The facts of every account that has any.
pub async fn facts(db: &Db) -> Result<HashMap<u32, Facts>, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        return pg::accounts::facts(pool).await;
    }
    let states = sqlx::query_as!(
        StateRow,
        r#"SELECT account_id AS "account_id!: i64", paused AS "paused: bool",
                  last_failure_at AS "last_failure_at: DateTime<Utc>", last_failure,
                  five_hour_utilization, five_hour_resets_at AS "five_hour_resets_at: DateTime<Utc>",
                  seven_day_utilization, seven_day_resets_at AS "seven_day_resets_at: DateTime<Utc>",
                  usage_read_at AS "usage_read_at: DateTime<Utc>", usage_error
           FROM account_state"#
    )
    .fetch_all(&db.sqlite()?.read)
    .await?;
    let live = sqlx::query_as!(
        LiveRow,
        r#"SELECT r.account_id AS "account_id!: i64", COUNT(*) AS "live_tokens!: i64",
                  MIN(t.refresh_expires_at) AS "soonest: DateTime<Utc>"
           FROM auth_requests r JOIN token_bundles t ON t.request_id = r.id
           WHERE r.status = 'approved' AND t.refresh_error IS NULL AND r.account_id IS NOT NULL
           GROUP BY r.account_id"#
    )
    .fetch_all(&db.sqlite()?.read)
    .await?;
    let approved = sqlx::query!(
        r#"SELECT r.account_id AS "account_id!: i64", MAX(a.at) AS "at!: DateTime<Utc>"
           FROM audit_events a JOIN auth_requests r ON r.id = a.request_id
           WHERE a.action = 'approve' AND r.account_id IS NOT NULL
           GROUP BY r.account_id"#
    )
    .fetch_all(&db.sqlite()?.read)
    .await?
    .into_iter()
    .map(|a| (a.account_id, a.at))
    .collect();
    facts_from(states, live, approved)
}

/// The facts of every account, from either store's rows: the one mapping.
pub(super) fn facts_from(
    states: Vec<StateRow>,
    live: Vec<LiveRow>,
    approved: Vec<(i64, DateTime<Utc>)>,
) -> Result<HashMap<u32, Facts>, StoreError> {
    let id = |stored: i64| {
        u32::try_from(stored).map_err(|e| StoreError::Corrupt(format!("account_id: {e}")))
    };
    let mut out: HashMap<u32, Facts> = HashMap::new();
    for s in states {
        let f = out.entry(id(s.account_id)?).or_default();
        f.paused = s.paused;
        f.last_failure_at = s.last_failure_at;
        f.last_failure = s.last_failure;
        let window = |utilization: Option<f64>, resets_at| {
            utilization.map(|utilization| Window {
                utilization,
                resets_at,
            })
        };
        f.usage = Reading {
            five_hour: window(s.five_hour_utilization, s.five_hour_resets_at),
            seven_day: window(s.seven_day_utilization, s.seven_day_resets_at),
        };
        f.usage_read_at = s.usage_read_at;
        f.usage_error = s.usage_error;
    }
    for l in live {
        let f = out.entry(id(l.account_id)?).or_default();
        f.live_tokens = l.live_tokens;
        f.soonest_relogin_at = l.soonest;
    }
    for (account, at) in approved {
        out.entry(id(account)?).or_default().last_approved_at = Some(at);
    }
    Ok(out)
}

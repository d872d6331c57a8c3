//! `webhook_deliveries`: the outbox of webhook events, and the sender's bookkeeping.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::SqliteConnection;
use uuid::Uuid;

use super::StoreError;
use super::{pg, Backend, Db};
use crate::domain::event::EventType;
use crate::domain::time::to_db;

/// One webhook's row of an event, rendered above the store: plain data.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The webhook's index in the configuration.
    pub webhook: u32,
    /// SHA-256 of its URL, so the row only ever goes to the URL it was queued for.
    pub webhook_key: Vec<u8>,
    pub body: String,
}

/// A row to queue, inside the transaction of the change it reports.
pub struct NewDelivery<'a> {
    pub rendered: &'a Rendered,
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub request_id: Option<Uuid>,
    pub at: DateTime<Utc>,
}

pub async fn insert(conn: &mut SqliteConnection, d: &NewDelivery<'_>) -> Result<(), StoreError> {
    let event_id = d.event_id.hyphenated();
    let request_id = d.request_id.map(|id| id.hyphenated());
    let at = to_db(d.at);
    sqlx::query!(
        "INSERT INTO webhook_deliveries
             (webhook, webhook_key, event_id, event_type, request_id, body, next_attempt_at,
              created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?7)",
        d.rendered.webhook,
        d.rendered.webhook_key,
        event_id,
        d.event_type,
        request_id,
        d.rendered.body,
        at,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Queues `event`, about no request, to every webhook that wants it (a `test` event).
pub async fn queue_event(db: &Db, event: EventType, at: DateTime<Utc>) -> Result<(), StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        let mut tx = super::commit::WriteTx::begin_pg(db, pool).await?;
        tx.raise(None, event, at).await?;
        return tx.commit().await;
    }
    let mut tx = super::commit::WriteTx::begin(db).await?;
    tx.raise(None, event, at).await?;
    tx.commit().await?;
    Ok(())
}

/// The oldest pending row of a webhook: the only one it may be sent, so that delivery is
/// in order per webhook.
#[derive(Debug)]
pub struct Due {
    pub id: i64,
    pub webhook_key: Vec<u8>,
    pub event_id: String,
    pub event_type: String,
    pub body: String,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
}

/// The oldest pending row of `webhook`: on PostgreSQL only its id and due time (the rest
/// comes with the [`claim`]).
pub async fn oldest_pending(db: &Db, webhook: u32) -> Result<Option<Due>, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        let row = pg::store::deliveries::oldest_pending(pool, i64::from(webhook)).await?;
        return Ok(row.map(|r| Due {
            id: r.id,
            webhook_key: Vec::new(),
            event_id: String::new(),
            event_type: String::new(),
            body: String::new(),
            attempts: 0,
            next_attempt_at: r.next_attempt_at,
        }));
    }
    sqlx::query_as!(
        Due,
        r#"SELECT id AS "id!", webhook_key, event_id, event_type, body, attempts,
                  next_attempt_at AS "next_attempt_at: DateTime<Utc>"
           FROM webhook_deliveries WHERE webhook = ? AND status = 'pending'
           ORDER BY id LIMIT 1"#,
        webhook,
    )
    .fetch_all(&db.sqlite()?.read)
    .await
    .map(|rows| rows.into_iter().next())
    .map_err(Into::into)
}

/// A due row taken for sending. SQLite has one sender (the single writer's process), so it
/// holds nothing; on PostgreSQL it holds the row's lock (`FOR UPDATE SKIP LOCKED`) until the
/// outcome is recorded, so no other router sends it meanwhile, and a router killed mid-send
/// lets go of it with its connection: another sends it again, with the same event id.
pub struct Claim {
    pub due: Due,
    hold: Option<sqlx::Transaction<'static, sqlx::Postgres>>,
}

/// Takes `due` (the oldest pending row of `webhook`, due now) for sending; `None` when
/// another router holds it.
pub async fn claim(db: &Db, webhook: u32, due: Due) -> Result<Option<Claim>, StoreError> {
    let Backend::Postgres(pool) = &db.backend else {
        return Ok(Some(Claim { due, hold: None }));
    };
    let now = crate::domain::time::now();
    let claimed = pg::store::deliveries::claim_oldest(pool, i64::from(webhook), now).await?;
    Ok(claimed.map(|(tx, row)| Claim {
        due: Due {
            id: row.id,
            webhook_key: row.webhook_key,
            event_id: row.event_id.hyphenated().to_string(),
            event_type: row.event_type,
            body: row.body.to_string(),
            attempts: row.attempts,
            next_attempt_at: due.next_attempt_at,
        },
        hold: Some(tx),
    }))
}

impl Claim {
    /// Records a 2xx.
    pub async fn delivered(self, db: &Db, now: DateTime<Utc>) -> Result<(), StoreError> {
        match self.hold {
            None => delivered(db, self.due.id, now).await,
            Some(mut tx) => {
                pg::store::deliveries::delivered(&mut tx, self.due.id, now).await?;
                Ok(tx.commit().await?)
            }
        }
    }

    /// Records a failed attempt: tried again at `retry_at`, or `failed` for good when `None`.
    pub async fn failed(
        self,
        db: &Db,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        match self.hold {
            None => attempt_failed(db, self.due.id, error, retry_at, now).await,
            Some(mut tx) => {
                let id = self.due.id;
                pg::store::deliveries::attempt_failed(&mut tx, id, error, retry_at, now).await?;
                Ok(tx.commit().await?)
            }
        }
    }
}

/// Records a 2xx.
async fn delivered(db: &Db, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
    let now = to_db(now);
    sqlx::query!(
        "UPDATE webhook_deliveries
         SET status = 'delivered', attempts = attempts + 1, last_error = NULL, updated_at = ?1
         WHERE id = ?2 AND status = 'pending'",
        now,
        id,
    )
    .execute(&db.sqlite()?.write)
    .await?;
    Ok(())
}

/// Records a failed attempt: tried again at `retry_at`, or `failed` for good when `None`.
async fn attempt_failed(
    db: &Db,
    id: i64,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let now = to_db(now);
    let status = if retry_at.is_some() {
        "pending"
    } else {
        "failed"
    };
    let retry_at = retry_at.map(to_db).unwrap_or_else(|| now.clone());
    sqlx::query!(
        "UPDATE webhook_deliveries
         SET status = ?1, attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3,
             updated_at = ?4
         WHERE id = ?5 AND status = 'pending'",
        status,
        error,
        retry_at,
        now,
        id,
    )
    .execute(&db.sqlite()?.write)
    .await?;
    Ok(())
}

/// A delivery as `GET /v1/webhooks/deliveries` and `admin webhooks` show it: never the body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    pub id: i64,
    pub webhook: i64,
    pub event_id: String,
    pub event_type: String,
    pub request_id: Option<String>,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The most recent deliveries, newest first.
pub async fn recent(db: &Db, limit: u32) -> Result<Vec<Delivery>, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        let rows = pg::store::deliveries::recent(pool, i64::from(limit)).await?;
        return Ok(rows
            .into_iter()
            .map(|r| Delivery {
                id: r.id,
                webhook: r.webhook,
                event_id: r.event_id.hyphenated().to_string(),
                event_type: r.event_type,
                request_id: r.request_id.map(|id| id.hyphenated().to_string()),
                status: r.status,
                attempts: r.attempts,
                last_error: r.last_error,
                next_attempt_at: r.next_attempt_at,
                created_at: r.created_at,
                updated_at: r.updated_at,
            })
            .collect());
    }
    sqlx::query_as!(
        Delivery,
        r#"SELECT id AS "id!", webhook, event_id, event_type, request_id, status, attempts,
                  last_error, next_attempt_at AS "next_attempt_at: DateTime<Utc>",
                  created_at AS "created_at: DateTime<Utc>",
                  updated_at AS "updated_at: DateTime<Utc>"
           FROM webhook_deliveries ORDER BY id DESC LIMIT ?"#,
        limit,
    )
    .fetch_all(&db.sqlite()?.read)
    .await
    .map_err(Into::into)
}

/// Fails the pending rows of webhooks no longer configured (the list got shorter).
pub async fn fail_unconfigured(db: &Db, hooks: u32, now: DateTime<Utc>) -> Result<u64, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        let failed = pg::store::deliveries::fail_unconfigured(pool, i64::from(hooks), now);
        return Ok(failed.await?);
    }
    let now = to_db(now);
    let done = sqlx::query!(
        "UPDATE webhook_deliveries
         SET status = 'failed', last_error = 'the webhook is no longer configured', updated_at = ?1
         WHERE status = 'pending' AND webhook >= ?2",
        now,
        hooks,
    )
    .execute(&db.sqlite()?.write)
    .await?;
    Ok(done.rows_affected())
}

//! `webhook_deliveries`: the outbox, sent by whichever router claims a row first. A claim is
//! a row lock held while the row is sent: another router skips it (`SKIP LOCKED`) instead of
//! sending it twice, and a router killed mid-send releases it with its transaction, so
//! another sends it, with the same event id.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

/// A row to queue, in the transaction of the change it reports.
pub struct NewDelivery<'a> {
    pub webhook: i64,
    pub webhook_key: &'a [u8],
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub request_id: Option<Uuid>,
    pub body: &'a Value,
    pub at: DateTime<Utc>,
}

pub async fn insert(conn: &mut PgConnection, d: &NewDelivery<'_>) -> Result<(), crate::Error> {
    sqlx::query!(
        "INSERT INTO webhook_deliveries
             (webhook, webhook_key, event_id, event_type, request_id, body, next_attempt_at,
              created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7)",
        d.webhook,
        d.webhook_key,
        d.event_id,
        d.event_type,
        d.request_id,
        d.body,
        d.at,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A claimed row: what to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    pub id: i64,
    pub webhook_key: Vec<u8>,
    pub event_id: Uuid,
    pub event_type: String,
    pub body: Value,
    pub attempts: i64,
}

/// Claims webhook `webhook`'s oldest pending row, when it is due at `now` and no other router
/// holds it: a webhook's events go out in order, so a newer row is never taken past a held
/// one. `status = 'pending'` is checked again outside the subquery: a row another router
/// delivered and unlocked between this statement's snapshot and its lock is re-read under
/// the lock, and must not be taken (it would be sent twice). The claim lasts as long as the
/// returned transaction; finish it with
/// [`delivered`] or [`attempt_failed`] and commit.
pub async fn claim_oldest(
    pool: &PgPool,
    webhook: i64,
    now: DateTime<Utc>,
) -> Result<Option<(Transaction<'static, Postgres>, Due)>, crate::Error> {
    let mut tx = pool.begin().await?;
    let due = sqlx::query_as!(
        Due,
        "SELECT id, webhook_key, event_id, event_type, body, attempts FROM webhook_deliveries
         WHERE id = (SELECT MIN(id) FROM webhook_deliveries
                     WHERE webhook = $1 AND status = 'pending')
           AND status = 'pending' AND next_attempt_at <= $2
         FOR UPDATE SKIP LOCKED",
        webhook,
        now,
    )
    .fetch_optional(&mut *tx)
    .await?;
    Ok(due.map(|due| (tx, due)))
}

/// Marks a claimed row delivered.
pub async fn delivered(
    conn: &mut PgConnection,
    id: i64,
    now: DateTime<Utc>,
) -> Result<(), crate::Error> {
    sqlx::query!(
        "UPDATE webhook_deliveries
         SET status = 'delivered', attempts = attempts + 1, last_error = NULL, updated_at = $1
         WHERE id = $2 AND status = 'pending'",
        now,
        id,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a failed attempt on a claimed row: tried again at `retry_at`, or failed for good.
pub async fn attempt_failed(
    conn: &mut PgConnection,
    id: i64,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), crate::Error> {
    sqlx::query!(
        "UPDATE webhook_deliveries
         SET status = CASE WHEN $3::timestamptz IS NULL THEN 'failed' ELSE 'pending' END,
             attempts = attempts + 1, last_error = $2,
             next_attempt_at = COALESCE($3, next_attempt_at), updated_at = $4
         WHERE id = $1 AND status = 'pending'",
        id,
        error,
        retry_at,
        now,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A webhook's oldest pending row, read without a lock: when it is due, [`claim_oldest`]
/// takes it (unless another router holds it).
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub id: i64,
    pub next_attempt_at: DateTime<Utc>,
}

pub async fn oldest_pending(pool: &PgPool, webhook: i64) -> Result<Option<Pending>, crate::Error> {
    sqlx::query_as!(
        Pending,
        "SELECT id, next_attempt_at FROM webhook_deliveries
         WHERE webhook = $1 AND status = 'pending' ORDER BY id LIMIT 1",
        webhook,
    )
    .fetch_optional(pool)
    .await
    .map_err(crate::Error::from)
}

/// A delivery as the API lists it: never the body.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    pub id: i64,
    pub webhook: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub request_id: Option<Uuid>,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The most recent deliveries, newest first.
pub async fn recent(pool: &PgPool, limit: i64) -> Result<Vec<DeliveryRow>, crate::Error> {
    sqlx::query_as!(
        DeliveryRow,
        "SELECT id, webhook, event_id, event_type, request_id, status, attempts, last_error,
                next_attempt_at, created_at, updated_at
         FROM webhook_deliveries ORDER BY id DESC LIMIT $1",
        limit,
    )
    .fetch_all(pool)
    .await
    .map_err(crate::Error::from)
}

/// Fails the pending rows of webhooks no longer configured (index `hooks` and up).
pub async fn fail_unconfigured(
    pool: &PgPool,
    hooks: i64,
    now: DateTime<Utc>,
) -> Result<u64, crate::Error> {
    let done = sqlx::query!(
        "UPDATE webhook_deliveries
         SET status = 'failed', last_error = 'the webhook is no longer configured', updated_at = $1
         WHERE status = 'pending' AND webhook >= $2",
        now,
        hooks,
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::{eventually, scratch_database};

    async fn queue(pool: &PgPool, n: usize) -> Vec<Uuid> {
        let mut ids = Vec::new();
        for i in 0..n {
            let event_id = Uuid::now_v7();
            let body = json!({"id": event_id, "type": "test", "n": i});
            let mut tx = pool.begin().await.unwrap();
            let row = NewDelivery {
                webhook: 0,
                webhook_key: &[9; 32],
                event_id,
                event_type: "test",
                request_id: None,
                body: &body,
                at: Utc::now() - chrono::Duration::seconds(1),
            };
            insert(&mut tx, &row).await.unwrap();
            tx.commit().await.unwrap();
            ids.push(event_id);
        }
        ids
    }

    #[tokio::test]
    async fn a_held_row_is_skipped_by_another_router_and_never_passed_for_a_newer_one() {
        let pool = scratch_database().await;
        crate::MIGRATOR.run(&pool).await.unwrap();
        let other = PgPool::connect_with((*pool.connect_options()).clone())
            .await
            .unwrap();
        let events = queue(&pool, 2).await;
        let now = Utc::now();

        let (mut held, first) = claim_oldest(&pool, 0, now).await.unwrap().unwrap();
        assert_eq!(first.event_id, events[0]);
        assert!(
            claim_oldest(&other, 0, now).await.unwrap().is_none(),
            "the other router neither sends the held row nor the newer one"
        );

        delivered(&mut held, first.id, now).await.unwrap();
        held.commit().await.unwrap();
        let (tx, second) = claim_oldest(&other, 0, now).await.unwrap().unwrap();
        assert_eq!(second.event_id, events[1]);
        drop(tx);
    }

    /// A router killed mid-send (its transaction never commits): the row goes to another,
    /// unchanged, with the same event id, and nothing is lost.
    #[tokio::test]
    async fn a_claim_abandoned_mid_send_is_sent_again_with_the_same_event_id() {
        let pool = scratch_database().await;
        crate::MIGRATOR.run(&pool).await.unwrap();
        let other = PgPool::connect_with((*pool.connect_options()).clone())
            .await
            .unwrap();
        let events = queue(&pool, 1).await;
        let now = Utc::now();

        let dying = PgPool::connect_with((*pool.connect_options()).clone())
            .await
            .unwrap();
        let (crashed, claimed) = claim_oldest(&dying, 0, now).await.unwrap().unwrap();
        assert!(
            claim_oldest(&other, 0, now).await.unwrap().is_none(),
            "held"
        );
        // Killed mid-send: its connections close with the claim uncommitted.
        drop(crashed);
        dying.close().await;

        let (mut tx, again) =
            eventually(|| async { claim_oldest(&other, 0, now).await.unwrap() }).await;
        assert_eq!(again, claimed, "the same row, untouched");
        assert_eq!(again.event_id, events[0]);
        attempt_failed(&mut tx, again.id, "receiver answered 503", Some(now), now)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let (_, retried) = claim_oldest(&pool, 0, now).await.unwrap().unwrap();
        assert_eq!(retried.attempts, 1);
        assert_eq!(retried.event_id, events[0]);
    }
}

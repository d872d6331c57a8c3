//! Deleting what is past its retention, in batches of at most [`BATCH`] rows per statement
//! (each its own short write transaction), so that no poll waits behind a long write lock.

use chrono::{DateTime, Utc};

use super::pg::store::upkeep;
use super::StoreError;
use super::{Backend, Db};
use crate::domain::time::to_db;

/// The most rows one delete statement removes.
pub const BATCH: i64 = 500;

/// What one purge removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub rows: u64,
    pub batches: u32,
}

/// Deletes finished requests last changed before `before` (their tokens go with them, by
/// the foreign key's cascade), oldest first.
///
/// An approved request whose tokens were obtained or refreshed since `before` is kept: it is
/// in use, however long ago it was approved. What is deleted is then dropped from the
/// request cache (a poll must not see `approved` with no token) and scrubbed from the files
/// ([`Db::scrub`]), since tokens went with it.
pub async fn purge_finished_requests(
    db: &Db,
    before: DateTime<Utc>,
    batch: i64,
) -> Result<Purged, StoreError> {
    let pg_before = before;
    let before = to_db(before);
    let purged = in_batches(batch, || async {
        if let Backend::Postgres(pool) = &db.backend {
            return Ok(upkeep::purge_requests(pool, pg_before, batch).await?);
        }
        let done = sqlx::query_file!("src/db/sql/purge_requests.sql", before, batch)
            .execute(&db.sqlite()?.write)
            .await?;
        Ok(done.rows_affected())
    })
    .await?;
    if purged.rows > 0 {
        let deleted = super::commit::Committed {
            deleted: true,
            ..Default::default()
        };
        if let Backend::Postgres(pool) = &db.backend {
            let mut conn = pool
                .acquire()
                .await
                .map_err(|e| StoreError::from(super::pg::store::Error(e)))?;
            super::pg::changes::announce(&mut conn, db.origin, &deleted).await?;
        }
        db.hooks.committed(deleted);
        db.scrub().await?;
    }
    Ok(purged)
}

/// Deletes audit rows older than `before`, oldest first.
pub async fn purge_audit(db: &Db, before: DateTime<Utc>, batch: i64) -> Result<Purged, StoreError> {
    let pg_before = before;
    let before = to_db(before);
    in_batches(batch, || async {
        if let Backend::Postgres(pool) = &db.backend {
            return Ok(upkeep::purge_audit(pool, pg_before, batch).await?);
        }
        let done = sqlx::query_file!("src/db/sql/purge_audit.sql", before, batch)
            .execute(&db.sqlite()?.write)
            .await?;
        Ok(done.rows_affected())
    })
    .await
}

/// Deletes delivered and failed webhook deliveries last changed before `before`.
pub async fn purge_deliveries(
    db: &Db,
    before: DateTime<Utc>,
    batch: i64,
) -> Result<Purged, StoreError> {
    let pg_before = before;
    let before = to_db(before);
    in_batches(batch, || async {
        if let Backend::Postgres(pool) = &db.backend {
            return Ok(upkeep::purge_deliveries(pool, pg_before, batch).await?);
        }
        let done = sqlx::query_file!("src/db/sql/purge_deliveries.sql", before, batch)
            .execute(&db.sqlite()?.write)
            .await?;
        Ok(done.rows_affected())
    })
    .await
}

/// Runs `delete` (one statement of at most `batch` rows) until a batch comes back short,
/// letting waiting writers (a create, an approval) in between batches.
async fn in_batches<F, Fut>(batch: i64, mut delete: F) -> Result<Purged, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64, StoreError>>,
{
    let mut purged = Purged::default();
    loop {
        let rows = delete().await?;
        if rows > 0 {
            purged.rows += rows;
            purged.batches += 1;
        }
        if rows != batch as u64 {
            return Ok(purged);
        }
        tokio::task::yield_now().await;
    }
}

/// What one retention pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Retained {
    pub requests: Purged,
    pub audit: Purged,
    pub deliveries: Purged,
}

//! Deleting what is past its retention, in batches of at most [`BATCH`] rows per statement
//! (each its own short write transaction), so that no poll waits behind a long write lock.

use chrono::{DateTime, Utc};

use super::Db;
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
pub async fn purge_finished_requests(
    db: &Db,
    before: DateTime<Utc>,
    batch: i64,
) -> Result<Purged, sqlx::Error> {
    let before = to_db(before);
    let mut purged = Purged::default();
    loop {
        let done = sqlx::query!(
            "DELETE FROM auth_requests WHERE id IN (
                 SELECT id FROM auth_requests
                 WHERE status NOT IN ('pending', 'in_progress') AND updated_at < ?1
                 ORDER BY updated_at LIMIT ?2)",
            before,
            batch,
        )
        .execute(&db.write)
        .await?;
        if !purged.add(done.rows_affected(), batch) {
            return Ok(purged);
        }
        // Let waiting writers (a create, an approval) in between batches.
        tokio::task::yield_now().await;
    }
}

/// Deletes audit rows older than `before`, oldest first.
pub async fn purge_audit(
    db: &Db,
    before: DateTime<Utc>,
    batch: i64,
) -> Result<Purged, sqlx::Error> {
    let before = to_db(before);
    let mut purged = Purged::default();
    loop {
        let done = sqlx::query!(
            "DELETE FROM audit_events WHERE id IN (
                 SELECT id FROM audit_events WHERE at < ?1 ORDER BY id LIMIT ?2)",
            before,
            batch,
        )
        .execute(&db.write)
        .await?;
        if !purged.add(done.rows_affected(), batch) {
            return Ok(purged);
        }
        tokio::task::yield_now().await;
    }
}

impl Purged {
    /// Counts one statement; whether a full batch suggests there is more.
    fn add(&mut self, rows: u64, batch: i64) -> bool {
        if rows > 0 {
            self.rows += rows;
            self.batches += 1;
        }
        rows == batch as u64
    }
}

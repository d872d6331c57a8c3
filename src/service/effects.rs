//! What follows a commit, in one place: the store calls [`Effects`] (its
//! [`Hooks`](crate::db::commit::Hooks)) after every commit, so no write path can forget to
//! drop a cached row, wake a long poll or wake the webhook sender.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::cache::RequestCache;
use super::waiters::Waiters;
use crate::db::commit::{Committed, Hooks};
use crate::db::deliveries::Rendered;
use crate::db::requests::{self, StoredRequest};
use crate::db::Db;
use crate::domain::event::{EventType, RequestSnapshot};
use crate::notify::Outbox;

/// The process's state around the store: the status poll's cache, the long-poll waiters and
/// the webhooks.
pub struct Effects {
    cache: RequestCache,
    /// Turns at reading a row the cache missed; see [`Effects::find_cached`].
    cache_misses: tokio::sync::Semaphore,
    waiters: Arc<Waiters>,
    outbox: Arc<Outbox>,
    /// Set while other routers' commits cannot be heard (PostgreSQL, listener down): every
    /// poll reads the database.
    read_through: AtomicBool,
    /// Whether other routers' commits are heard now (PostgreSQL); see [`Self::deaf`].
    hears_others: AtomicBool,
}

impl Effects {
    /// `reads`: how many reads the store runs at once.
    pub fn new(outbox: Outbox, reads: usize) -> Arc<Self> {
        Arc::new(Self {
            cache: RequestCache::default(),
            cache_misses: tokio::sync::Semaphore::new(2 * reads),
            waiters: Arc::default(),
            outbox: Arc::new(outbox),
            read_through: AtomicBool::new(false),
            hears_others: AtomicBool::new(false),
        })
    }

    /// Whether this router, on a database shared with others, cannot hear their commits
    /// now (starting, or its listener reconnecting): it is then not ready for traffic.
    pub fn deaf(&self, db: &Db) -> bool {
        db.is_shared() && !self.hears_others.load(Ordering::SeqCst)
    }

    pub fn waiters(&self) -> &Arc<Waiters> {
        &self.waiters
    }

    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// Request `id` as the status poll needs it, through the read-through cache.
    pub async fn find_cached(
        &self,
        db: &Db,
        id: Uuid,
    ) -> Result<Option<Arc<StoredRequest>>, crate::db::StoreError> {
        if self.read_through.load(Ordering::SeqCst) {
            return Ok(requests::find(db, id).await?.map(Arc::new));
        }
        if let Some(hit) = self.cache.get(id, Instant::now()) {
            return Ok(Some(hit));
        }
        // A burst of first polls (10,000 clients starting together, or coming back after a
        // restart) would queue one read each in sqlx, and a queued query holds about 3 KB
        // until it runs: 30 MB at that scale. A turn costs a few bytes, and the store runs
        // only so many reads at a time anyway.
        let _turn = self.cache_misses.acquire().await;
        // A read ahead of this one may have cached the row (200 waiters on one request).
        let read_started = Instant::now();
        if let Some(hit) = self.cache.get(id, read_started) {
            return Ok(Some(hit));
        }
        let Some(row) = requests::find(db, id).await? else {
            return Ok(None);
        };
        let row = Arc::new(row);
        if !db.is_shared() || settled(&row) {
            self.cache.put(id, row.clone(), read_started);
        }
        Ok(Some(row))
    }
}

/// Whether a row can no longer change status: on PostgreSQL only such rows are cached.
///
/// Another router's commit reaches this one as an announcement, a moment after the commit:
/// a client that saw B's answer and polls A at once could beat it. So a row that may still
/// change (pending, in progress, approved: revocable) is read from the database on every
/// poll, and the announcement only drops the settled rows retention deletes and wakes the
/// long polls. SQLite has one router, whose own commits drop its cache before they answer.
fn settled(row: &StoredRequest) -> bool {
    let status = row.request.status;
    status.is_terminal() && status != crate::domain::Status::Approved
}

impl Effects {
    /// The fallback for a lost change announcement (PostgreSQL, every
    /// `storage.fallback_poll_secs`): each request waited on is read again, and its waiters
    /// woken (its cached row dropped) if it changed since they began to wait.
    pub async fn recheck_waited(&self, db: &Db) -> Result<usize, crate::db::StoreError> {
        let mut woken = 0;
        for (id, since) in self.waiters.waited() {
            let changed = match requests::find(db, id).await? {
                Some(row) => row.request.updated_at >= since,
                None => true,
            };
            if changed {
                self.cache.forget(id);
                self.waiters.wake(id);
                woken += 1;
            }
        }
        Ok(woken)
    }
}

impl Hooks for Effects {
    fn wants(&self, event: EventType) -> bool {
        self.outbox.wants(event)
    }

    fn deliveries(
        &self,
        event: EventType,
        id: Uuid,
        at: DateTime<Utc>,
        request: Option<&RequestSnapshot>,
        detail: Option<&serde_json::Value>,
    ) -> Vec<Rendered> {
        self.outbox
            .targets(event)
            .map(|hook| Rendered {
                webhook: hook.index,
                webhook_key: hook.key.clone(),
                body: self.outbox.render(hook, id, event, at, request, detail),
            })
            .collect()
    }

    fn committed(&self, committed: Committed) {
        if committed.deleted || committed.all_changed {
            self.cache.forget_all();
        }
        if committed.all_changed {
            self.waiters.wake_all();
        }
        for id in committed.touched {
            self.cache.forget(id);
        }
        for id in committed.changed {
            self.cache.forget(id);
            self.waiters.wake(id);
        }
        if committed.queued {
            self.outbox.work.notify_one();
        }
    }

    fn listening(&self, live: bool) {
        self.read_through.store(!live, Ordering::SeqCst);
        self.hears_others.store(live, Ordering::SeqCst);
        // Either way, what was cached or awaited may have changed unheard.
        self.cache.forget_all();
        self.waiters.wake_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A burst of cache misses must queue here, where waiting costs a few bytes, rather than
    /// as sqlx queries of about 3 KB each.
    #[tokio::test]
    async fn a_cache_miss_past_the_readers_turns_waits_for_one() {
        let (_dir, db) = crate::db::scratch().await;
        let effects = Effects::new(Outbox::default(), db.read_connections());
        let turns = effects.cache_misses.available_permits();
        let all = effects
            .cache_misses
            .acquire_many(turns as u32)
            .await
            .unwrap();

        let waiting = tokio::time::timeout(
            Duration::from_millis(100),
            effects.find_cached(&db, Uuid::new_v4()),
        )
        .await;
        assert!(waiting.is_err(), "read without a turn");

        drop(all);
        let read = tokio::time::timeout(
            Duration::from_secs(5),
            effects.find_cached(&db, Uuid::new_v4()),
        )
        .await
        .expect("read once a turn is free");
        assert!(read.unwrap().is_none());
    }
}

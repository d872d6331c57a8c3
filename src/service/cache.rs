//! A read-through cache of request rows for the status poll, the hot path: most polls then
//! never leave the process, instead of a round trip through an SQLite connection's thread.
//!
//! The database stays the truth; the cache only skips re-reading what cannot have changed:
//! - every write in this process that changes a row calls [`RequestCache::forget`] after it
//!   commits, which drops the entry and leaves a tombstone stamped with the time;
//! - a reader stamps the time *before* it reads the database and may only cache what it read
//!   if no tombstone for that id is newer, so an old row read before a commit can never be
//!   cached after it;
//! - the reaper's bulk expiry drops the whole cache (with the same tombstone rule), although
//!   a request past its deadline already reads as expired from its `expires_at`;
//! - entries live at most [`TTL`], which bounds staleness from anything that bypasses the
//!   process (an admin's `sqlite3` write, retention deleting old rows).
//!
//! Only request rows are cached, never tokens: an approved request's bundle is read from the
//! database (and decrypted) on every poll.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::db::requests::StoredRequest;

/// How long an entry may be served without re-reading the row.
pub const TTL: Duration = Duration::from_secs(60);
/// How long a tombstone blocks stale inserts: longer than any read can take (a read waits at
/// most the pool's 10 s acquire timeout plus the query itself).
const TOMBSTONE_TTL: Duration = Duration::from_secs(60);
/// Past this many entries, expired ones are dropped; if that is not enough, all are. The same
/// bound holds for tombstones, where "all" becomes one bulk tombstone (`cleared_at`), so the
/// work of a forget stays amortised constant however many rows one commit changes.
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
pub struct RequestCache {
    /// A std mutex: held for a map operation only, never across an await.
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Uuid, (Arc<StoredRequest>, Instant)>,
    tombstones: HashMap<Uuid, Instant>,
    /// When the whole cache was last dropped: a tombstone for every id at once.
    cleared_at: Option<Instant>,
}

impl RequestCache {
    pub fn get(&self, id: Uuid, now: Instant) -> Option<Arc<StoredRequest>> {
        let inner = self.lock();
        let (row, at) = inner.entries.get(&id)?;
        (now.saturating_duration_since(*at) < TTL).then(|| row.clone())
    }

    /// Caches `row`, read from a database read that started at `read_started`, unless a
    /// write to it (or a bulk write to every row) committed since then.
    pub fn put(&self, id: Uuid, row: Arc<StoredRequest>, read_started: Instant) {
        let mut inner = self.lock();
        let written_since = |t: Option<&Instant>| t.is_some_and(|t| *t >= read_started);
        if written_since(inner.tombstones.get(&id)) || written_since(inner.cleared_at.as_ref()) {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES {
            inner
                .entries
                .retain(|_, (_, at)| read_started.saturating_duration_since(*at) < TTL);
            if inner.entries.len() >= MAX_ENTRIES {
                inner.entries.clear();
            }
        }
        inner.entries.insert(id, (row, Instant::now()));
    }

    /// Called after a write to `id` committed.
    pub fn forget(&self, id: Uuid) {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.entries.remove(&id);
        if inner.tombstones.len() >= MAX_ENTRIES {
            inner
                .tombstones
                .retain(|_, t| now.saturating_duration_since(*t) < TOMBSTONE_TTL);
            if inner.tombstones.len() >= MAX_ENTRIES / 2 {
                // All recent: one bulk tombstone stands in for all of them (it is at least as
                // new as each), instead of scanning them again on the next forget.
                inner.tombstones.clear();
                inner.cleared_at = Some(now);
            }
        }
        inner.tombstones.insert(id, now);
    }

    /// Called after a write that changed many rows at once (the reaper's expiry, retention):
    /// drops every entry and leaves a tombstone for every id, so a read that started before
    /// it cannot cache what it read.
    pub fn forget_all(&self) {
        let mut inner = self.lock();
        inner.entries.clear();
        inner.cleared_at = Some(Instant::now());
    }

    fn len(&self) -> usize {
        self.lock().entries.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for RequestCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestCache")
            .field("entries", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Scopes, Status, TokenRequest};

    fn row(status: Status) -> Arc<StoredRequest> {
        let now = chrono::Utc::now();
        Arc::new(StoredRequest {
            poll_token_hash: vec![1],
            request: TokenRequest {
                id: Uuid::nil(),
                client_id: None,
                client_name: "c".into(),
                hostname: "h".into(),
                scopes: Scopes::default(),
                status,
                account_id: None,
                error: None,
                created_at: now,
                updated_at: now,
                expires_at: now,
                lifetime_secs: None,
            },
        })
    }

    #[test]
    fn a_row_read_before_a_write_committed_is_never_cached() {
        let cache = RequestCache::default();
        let id = Uuid::new_v4();
        let read_started = Instant::now();
        cache.forget(id); // a write commits while the read is in flight
        cache.put(id, row(Status::Pending), read_started);
        assert!(cache.get(id, Instant::now()).is_none());

        let fresh_read = Instant::now();
        cache.put(id, row(Status::Denied), fresh_read);
        assert_eq!(
            cache.get(id, Instant::now()).unwrap().request.status,
            Status::Denied
        );
    }

    #[test]
    fn a_row_read_before_a_bulk_write_committed_is_never_cached() {
        let cache = RequestCache::default();
        let id = Uuid::new_v4();
        let read_started = Instant::now();
        cache.forget_all(); // the reaper's bulk expiry commits while the read is in flight
        cache.put(id, row(Status::Pending), read_started);
        assert!(cache.get(id, Instant::now()).is_none());

        cache.put(id, row(Status::Expired), Instant::now());
        assert!(
            cache.get(id, Instant::now()).is_some(),
            "a later read caches"
        );
    }

    #[test]
    fn forgetting_more_rows_than_the_bound_still_blocks_every_stale_read() {
        let cache = RequestCache::default();
        let read_started = Instant::now();
        let ids: Vec<Uuid> = (0..MAX_ENTRIES * 3).map(|_| Uuid::new_v4()).collect();
        for id in &ids {
            cache.forget(*id);
        }
        assert!(cache.lock().tombstones.len() <= MAX_ENTRIES);
        for id in [ids[0], ids[MAX_ENTRIES], ids[ids.len() - 1]] {
            cache.put(id, row(Status::Pending), read_started);
            assert!(cache.get(id, Instant::now()).is_none(), "stale read cached");
        }
    }

    #[test]
    fn forgetting_drops_the_entry_and_entries_expire() {
        let cache = RequestCache::default();
        let id = Uuid::new_v4();
        cache.put(id, row(Status::Pending), Instant::now());
        assert!(cache.get(id, Instant::now()).is_some());
        assert!(
            cache.get(id, Instant::now() + TTL).is_none(),
            "served at most TTL"
        );
        cache.forget(id);
        assert!(cache.get(id, Instant::now()).is_none());
    }
}

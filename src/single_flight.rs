//! Per-request async locks, so that only one refresh of a request talks to the provider at a
//! time. Providers rotate refresh tokens: two parallel refreshes with the same token would
//! burn it, the most reported bug in systems like this one.
//!
//! The locks live in this process only. That is enough because one router owns its SQLite
//! file; the conditional write on `token_bundles.generation` is the backstop that keeps an
//! older refresh token from ever overwriting a newer one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};
use uuid::Uuid;

#[derive(Default)]
pub struct KeyedLocks {
    /// A std mutex: it is held only to look up or drop an entry, never across an await.
    locks: Mutex<HashMap<Uuid, Arc<AsyncMutex<()>>>>,
}

/// Holds the lock of one key; dropping it releases the lock and forgets the key when nobody
/// else is waiting, so the map does not grow with every request ever refreshed.
pub struct KeyedGuard<'a> {
    owner: &'a KeyedLocks,
    key: Uuid,
    lock: Arc<AsyncMutex<()>>,
    guard: Option<OwnedMutexGuard<()>>,
}

impl KeyedLocks {
    pub async fn lock(&self, key: Uuid) -> KeyedGuard<'_> {
        let lock = self.map().entry(key).or_default().clone();
        let guard = lock.clone().lock_owned().await;
        KeyedGuard {
            owner: self,
            key,
            lock,
            guard: Some(guard),
        }
    }

    /// How many keys are tracked; for tests.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<AsyncMutex<()>>>> {
        self.locks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for KeyedGuard<'_> {
    fn drop(&mut self) {
        self.guard.take();
        let mut map = self.owner.map();
        // One reference in the map and ours: nobody else holds or waits for this lock.
        if Arc::strong_count(&self.lock) == 2 {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn one_holder_at_a_time_per_key_and_no_entry_left_behind() {
        let locks = Arc::new(KeyedLocks::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let max_inside = Arc::new(AtomicUsize::new(0));
        let key = Uuid::new_v4();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (locks, inside, max_inside) =
                    (locks.clone(), inside.clone(), max_inside.clone());
                tokio::spawn(async move {
                    let _g = locks.lock(key).await;
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    max_inside.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(max_inside.load(Ordering::SeqCst), 1);
        assert!(locks.is_empty());
    }

    #[tokio::test]
    async fn different_keys_do_not_wait_for_each_other() {
        let locks = KeyedLocks::default();
        let _a = locks.lock(Uuid::new_v4()).await;
        let b = tokio::time::timeout(Duration::from_millis(100), locks.lock(Uuid::new_v4())).await;
        assert!(b.is_ok());
    }
}

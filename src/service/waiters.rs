//! Long-poll waiters: an in-process signal per request, raised by the commit of any change
//! to that request (see [`super::Effects`]).
//!
//! A waiter subscribes *before* it reads the row, and a subscription remembers the signal's
//! value at that moment, so a commit that lands between the read and the wait is not missed:
//! the wait then returns at once. Each subscription is counted; dropping it (a finished
//! answer, or a client that hung up, whose handler future hyper drops) frees it at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use uuid::Uuid;

#[derive(Debug, Default)]
pub struct Waiters {
    /// A std mutex: held for a map operation only, never across an await.
    by_request: Mutex<HashMap<Uuid, Entry>>,
    /// Subscriptions alive now, across every request.
    count: AtomicUsize,
    /// Set at shutdown: nobody new waits, and everyone waiting answers now, so a long poll
    /// never holds a graceful shutdown for its whole wait.
    closed: AtomicBool,
}

#[derive(Debug)]
struct Entry {
    signal: Arc<Signal>,
    subscribers: usize,
    /// When the first of its current subscribers subscribed: a change committed since then
    /// (on another router) is one they wait for.
    since: chrono::DateTime<chrono::Utc>,
}

/// A request's changes: a count, and a `Notify` for those waiting on it. (Not a `watch`
/// channel: one waiter on each of 10,000 requests is the usual shape, and a channel's shared
/// state is 300 bytes to this one's 64.)
#[derive(Debug, Default)]
struct Signal {
    version: AtomicU64,
    notify: Notify,
}

impl Signal {
    fn raise(&self) {
        self.version.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

/// One waiter's subscription; dropping it unsubscribes.
pub struct Subscription {
    waiters: Arc<Waiters>,
    id: Uuid,
    signal: Arc<Signal>,
    /// The signal's count when the subscription was made.
    seen: u64,
}

/// Why a wait was not taken: the waiter answers at once instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// `limits.max_waiters` are waiting, across every request.
    Full,
    /// `limits.max_waiters_per_request` are waiting on this request: one poll token cannot
    /// take every waiter slot.
    RequestFull,
    /// The service is shutting down.
    Closed,
}

/// How many may wait: in all, and on one request.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub total: usize,
    pub per_request: usize,
}

impl Waiters {
    /// Subscribes to changes of request `id`, unless the bounds are reached.
    pub fn subscribe(self: &Arc<Self>, id: Uuid, bounds: Bounds) -> Result<Subscription, Skipped> {
        let mut map = self.lock();
        if self.closed.load(Ordering::SeqCst) {
            return Err(Skipped::Closed);
        }
        if self.count.load(Ordering::SeqCst) >= bounds.total {
            return Err(Skipped::Full);
        }
        let entry = map.entry(id).or_insert_with(|| Entry {
            signal: Arc::default(),
            subscribers: 0,
            since: crate::domain::time::now(),
        });
        if entry.subscribers >= bounds.per_request {
            return Err(Skipped::RequestFull);
        }
        entry.subscribers += 1;
        let signal = entry.signal.clone();
        let seen = signal.version.load(Ordering::SeqCst);
        self.count.fetch_add(1, Ordering::SeqCst);
        Ok(Subscription {
            waiters: self.clone(),
            id,
            signal,
            seen,
        })
    }

    /// Wakes every waiter of `id`. Called after a commit that changed it.
    pub fn wake(&self, id: Uuid) {
        if let Some(entry) = self.lock().get(&id) {
            entry.signal.raise();
        }
    }

    /// Wakes every waiter: after changes this router may have missed (another router's,
    /// while it was not listening).
    pub fn wake_all(&self) {
        for entry in self.lock().values() {
            entry.signal.raise();
        }
    }

    /// The requests waited on now, each with when its first current waiter subscribed.
    pub fn waited(&self) -> Vec<(Uuid, chrono::DateTime<chrono::Utc>)> {
        self.lock().iter().map(|(id, e)| (*id, e.since)).collect()
    }

    /// At shutdown: wakes every waiter, and refuses new ones.
    pub fn close(&self) {
        let map = self.lock();
        self.closed.store(true, Ordering::SeqCst);
        for entry in map.values() {
            entry.signal.raise();
        }
    }

    /// Waiters alive now.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Entry>> {
        self.by_request.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Subscription {
    /// Whether the service is shutting down: the waiter answers now, changed or not.
    pub fn closed(&self) -> bool {
        self.waiters.closed.load(Ordering::SeqCst)
    }

    /// Completes when the request changes after the subscription was made (at once, if it
    /// already has).
    pub async fn changed(&mut self) {
        loop {
            // Registered before the count is read, so a raise in between is not missed.
            let notified = self.signal.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let version = self.signal.version.load(Ordering::SeqCst);
            if version != self.seen {
                self.seen = version;
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut map = self.waiters.lock();
        if let Some(entry) = map.get_mut(&self.id) {
            entry.subscribers -= 1;
            if entry.subscribers == 0 {
                map.remove(&self.id);
            }
        }
        self.waiters.count.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at_most(total: usize) -> Bounds {
        Bounds {
            total,
            per_request: total,
        }
    }

    #[tokio::test]
    async fn a_change_between_subscribing_and_waiting_is_not_missed() {
        let waiters = Arc::new(Waiters::default());
        let id = Uuid::new_v4();
        let mut sub = waiters.subscribe(id, at_most(10)).unwrap();
        waiters.wake(id); // commits while the handler reads the row
        tokio::time::timeout(Duration::from_millis(100), sub.changed())
            .await
            .expect("woken at once");
    }

    #[tokio::test]
    async fn a_waiter_already_waiting_wakes_and_each_change_wakes_it_once() {
        let waiters = Arc::new(Waiters::default());
        let id = Uuid::new_v4();
        let mut sub = waiters.subscribe(id, at_most(10)).unwrap();
        let waiting = tokio::spawn(async move {
            sub.changed().await;
            sub
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        waiters.wake(id);
        let mut sub = tokio::time::timeout(Duration::from_millis(100), waiting)
            .await
            .expect("woken while waiting")
            .unwrap();
        let again = tokio::time::timeout(Duration::from_millis(50), sub.changed()).await;
        assert!(again.is_err(), "a change wakes once");
        waiters.wake(id);
        tokio::time::timeout(Duration::from_millis(100), sub.changed())
            .await
            .expect("the next change wakes again");
    }

    #[tokio::test]
    async fn waiters_are_counted_bounded_and_freed_when_dropped() {
        let waiters = Arc::new(Waiters::default());
        let id = Uuid::new_v4();
        let a = waiters.subscribe(id, at_most(2)).unwrap();
        let b = waiters.subscribe(Uuid::new_v4(), at_most(2)).unwrap();
        assert_eq!(waiters.subscribe(id, at_most(2)).err(), Some(Skipped::Full));
        assert_eq!(waiters.len(), 2);
        drop(a);
        drop(b);
        assert!(waiters.is_empty());
        assert!(waiters.lock().is_empty(), "no entry left behind");
        let mut other = waiters.subscribe(Uuid::new_v4(), at_most(2)).unwrap();
        waiters.wake(id);
        let woke = tokio::time::timeout(Duration::from_millis(50), other.changed()).await;
        assert!(woke.is_err(), "a wake-up is for its own request only");
    }

    #[test]
    fn past_the_per_request_bound_only_that_request_refuses_waiters() {
        let waiters = Arc::new(Waiters::default());
        let bounds = Bounds {
            total: 100,
            per_request: 2,
        };
        let id = Uuid::new_v4();
        let _a = waiters.subscribe(id, bounds).unwrap();
        let b = waiters.subscribe(id, bounds).unwrap();

        assert_eq!(
            waiters.subscribe(id, bounds).err(),
            Some(Skipped::RequestFull)
        );
        assert!(waiters.subscribe(Uuid::new_v4(), bounds).is_ok());
        drop(b);
        assert!(
            waiters.subscribe(id, bounds).is_ok(),
            "a freed slot is taken again"
        );
    }

    #[tokio::test]
    async fn closing_wakes_everyone_and_refuses_new_waiters() {
        let waiters = Arc::new(Waiters::default());
        let mut sub = waiters.subscribe(Uuid::new_v4(), at_most(10)).unwrap();
        waiters.close();
        tokio::time::timeout(Duration::from_millis(100), sub.changed())
            .await
            .expect("woken by the shutdown");
        assert_eq!(
            waiters.subscribe(Uuid::new_v4(), at_most(10)).err(),
            Some(Skipped::Closed)
        );
    }
}

//! The background task that expires stale requests.
//!
//! One pass is [`reap_once`], a public function of an explicit `now` so tests can drive it
//! deterministically; [`run`] calls it on a timer until shutdown.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::db::{self, Db};
use crate::domain::time;

/// Marks every open request whose deadline is at or before `now` as expired, and drops
/// expired console sessions. Returns how many requests expired.
pub async fn reap_once(db: &Db, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let expired = db::requests::expire_due(db, now).await?;
    db::sessions::delete_expired(db, now).await?;
    Ok(expired)
}

/// Runs a pass every `interval` until `stop` turns true. A failed pass is logged and the
/// next one tries again: a busy database must not end expiry for the life of the process.
pub async fn run(db: Db, interval: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => match reap_once(&db, time::now()).await {
                Ok(0) => tracing::debug!("reaper pass: nothing expired"),
                Ok(n) => tracing::info!(expired = n, "reaper pass expired requests"),
                Err(e) => tracing::warn!(error = %e, "reaper pass failed; retrying next tick"),
            },
            _ = stop.changed() => break,
        }
    }
    tracing::info!("reaper stopped");
}

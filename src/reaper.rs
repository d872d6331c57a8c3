//! The background task that expires stale requests.
//!
//! One pass is [`reap_once`] (expiry), [`purge_once`] (retention) and [`warn_relogin_due`]
//! (the refresh-token deadline's warning), public functions of an
//! explicit `now` so tests can drive them deterministically; [`run`] calls both on a timer
//! until shutdown.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::config::ReaperConfig;
use crate::db::retention;
pub use crate::db::retention::Retained;
use crate::db::{self, Db};
use crate::domain::time;
use crate::metrics::Metrics;

/// Marks every open request whose deadline is at or before `now` as expired, and drops
/// expired console sessions. Returns how many requests expired.
pub async fn reap_once(db: &Db, now: DateTime<Utc>) -> Result<u64, crate::db::StoreError> {
    let expired = db::requests::expire_due(db, now).await?;
    db::sessions::delete_expired(db, now).await?;
    Ok(expired)
}

/// The most bundles one pass warns of; the next pass takes the rest.
const RELOGIN_BATCH: i64 = 500;

/// Queues `token.relogin_due` once for each live bundle whose refresh token dies within
/// `warning` of `now`. Returns how many were warned of.
pub async fn warn_relogin_due(
    db: &Db,
    now: DateTime<Utc>,
    warning: Duration,
) -> Result<u64, crate::db::StoreError> {
    let before = chrono::Duration::from_std(warning)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let mut warned = 0;
    for due in db::tokens::relogin_due(db, before, RELOGIN_BATCH).await? {
        let detail = serde_json::json!({
            "request_id": due.request_id,
            "client_id": due.client_id,
            "account_id": due.account_id,
            "refresh_expires_at": due.refresh_expires_at,
        });
        if db::tokens::warn_relogin(db, due.request_id, &detail, now).await? {
            tracing::info!(request_id = %due.request_id, account_id = ?due.account_id, refresh_expires_at = %due.refresh_expires_at, "a login's refresh token dies soon: token.relogin_due queued");
            warned += 1;
        }
    }
    Ok(warned)
}

/// Deletes finished requests (with their tokens), audit rows, and delivered or failed
/// webhook deliveries past their retention.
pub async fn purge_once(
    db: &Db,
    now: DateTime<Utc>,
    cfg: &ReaperConfig,
) -> Result<Retained, crate::db::StoreError> {
    // The configuration bounds every retention, but the date arithmetic saturates anyway:
    // an overflow here once panicked the reaper for good.
    let age = |secs: u64| {
        i64::try_from(secs)
            .ok()
            .and_then(chrono::Duration::try_seconds)
            .and_then(|d| now.checked_sub_signed(d))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    };
    let requests =
        retention::purge_finished_requests(db, age(cfg.retain_terminal_secs), retention::BATCH)
            .await?;
    let audit = retention::purge_audit(db, age(cfg.retain_audit_secs), retention::BATCH).await?;
    let deliveries =
        retention::purge_deliveries(db, age(cfg.retain_terminal_secs), retention::BATCH).await?;
    Ok(Retained {
        requests,
        audit,
        deliveries,
    })
}

/// When the reaper last completed a whole pass, so that `/readyz` can tell a reaper that
/// stopped working (dead, or failing every pass) from one that is merely between passes.
#[derive(Debug)]
pub struct Health {
    last_pass: Mutex<Instant>,
    /// Past this long without a completed pass, the reaper counts as stalled.
    allowed: Duration,
}

/// How many intervals may pass without a completed pass before `/readyz` says so.
const STALLED_AFTER_INTERVALS: u32 = 3;

impl Health {
    /// The clock starts now: the first pass runs at once.
    pub fn new(cfg: &ReaperConfig) -> Self {
        Self {
            last_pass: Mutex::new(Instant::now()),
            allowed: Duration::from_secs(cfg.interval_secs) * STALLED_AFTER_INTERVALS,
        }
    }

    fn passed(&self) {
        *self.last_pass.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// How long since the last completed pass, when that is longer than allowed.
    pub fn stalled(&self, now: Instant) -> Option<Duration> {
        let last = *self.last_pass.lock().unwrap_or_else(|e| e.into_inner());
        let since = now.saturating_duration_since(last);
        (since > self.allowed).then_some(since)
    }
}

/// Runs a pass every `reaper.interval_secs` until `stop` turns true. A failed pass is logged
/// and the next one tries again: a busy database must not end expiry for the life of the
/// process. Each completed pass is noted in `health`.
pub async fn run(
    db: Db,
    cfg: ReaperConfig,
    relogin_warning: Duration,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(cfg.interval_secs));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if pass(&db, &cfg, relogin_warning, &metrics).await {
                    health.passed();
                }
            }
            _ = stop.changed() => break,
        }
    }
    tracing::info!("reaper stopped");
}

/// One pass of expiry and retention; whether both parts completed.
async fn pass(db: &Db, cfg: &ReaperConfig, relogin_warning: Duration, metrics: &Metrics) -> bool {
    // On PostgreSQL one router at a time runs a pass; the others' turn is the next tick.
    let _turn = match db.reaper_turn().await {
        Ok(Some(turn)) => turn,
        Ok(None) => {
            tracing::debug!("another router is running this reaper pass");
            return true;
        }
        Err(e) => {
            tracing::warn!(error = %e, "reaper pass could not start; retrying next tick");
            return false;
        }
    };
    let now = time::now();
    let expired = reap_once(db, now).await;
    let retained = purge_once(db, now, cfg).await;
    let warned = warn_relogin_due(db, now, relogin_warning).await;
    if let Err(e) = &warned {
        tracing::warn!(error = %e, "re-login warnings failed; retrying next tick");
    }
    metrics.reaper_pass(
        expired.as_ref().ok().copied(),
        retained.as_ref().ok().copied(),
    );
    let completed = expired.is_ok() && retained.is_ok() && warned.is_ok();
    match expired {
        Ok(0) => tracing::debug!("reaper pass: nothing expired"),
        Ok(n) => tracing::info!(expired = n, "reaper pass expired requests"),
        Err(e) => tracing::warn!(error = %e, "reaper pass failed; retrying next tick"),
    }
    match retained {
        Ok(r) if r.requests.rows + r.audit.rows > 0 => tracing::info!(
            requests = r.requests.rows,
            audit_events = r.audit.rows,
            "retention deleted old rows"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "retention pass failed; retrying next tick"),
    }
    completed
}

//! The background task that reads each account's usage windows from the provider
//! (`oauth.usage_url`), with the access tokens the router already holds, so the policy can
//! send the next login to the account with the most room and operators are warned before a
//! window fills.
//!
//! Each account has its own schedule: every `oauth.usage_poll_secs`, ±20% so that accounts
//! spread out; after a 429, a 5xx or no answer, doubling from there up to an hour. A 401
//! moves on to the account's next live token. Only accounts with a live access token are
//! read: the router never logs in just to look.

use std::collections::HashMap;
use std::time::Duration;

use rand::Rng;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::db;
use crate::db::usage::Crossed;
use crate::domain::time::{self, to_db};
use crate::domain::usage::Reading;
use crate::oauth::UsageError;
use crate::service::AppState;

/// The longest wait after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How often the task wakes to see whose reading is due.
const TICK: Duration = Duration::from_millis(500);

/// What one reading of an account came to.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Read (and stored), or nothing to read with: the next one after the interval.
    Done,
    /// The provider is unavailable or rate-limiting: back off.
    Unavailable,
}

/// Reads usage until `stop` turns true. Does nothing when `oauth.usage_url` is empty.
pub async fn run(app: AppState, mut stop: watch::Receiver<bool>) {
    if app.config.oauth.usage_url.is_empty() || app.config.accounts.is_empty() {
        return;
    }
    let interval = Duration::from_secs(app.config.oauth.usage_poll_secs);
    // Due at once: a restart should not leave the policy blind for a whole interval.
    let mut next: HashMap<u32, (Instant, Duration)> = app
        .config
        .accounts
        .iter()
        .map(|a| (a.id, (Instant::now(), interval)))
        .collect();
    loop {
        let now = Instant::now();
        let due: Vec<u32> = next
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let outcome = read_account(&app, id).await;
            let entry = next.entry(id).or_insert((now, interval));
            let wait = match outcome {
                Outcome::Done => {
                    entry.1 = interval;
                    jittered(interval)
                }
                Outcome::Unavailable => {
                    entry.1 = (entry.1 * 2).min(MAX_BACKOFF.max(interval));
                    entry.1
                }
            };
            entry.0 = Instant::now() + wait;
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.changed() => break,
        }
    }
}

/// `interval` ±20%.
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(rand::thread_rng().gen_range(0.8..=1.2))
}

/// Reads account `id`'s usage with its newest live token, the next one after a 401, and
/// stores what came of it.
async fn read_account(app: &AppState, id: u32) -> Outcome {
    let tokens = match db::usage::live_access_tokens(&app.db, id, time::now()).await {
        Ok(tokens) => tokens,
        Err(e) => {
            tracing::warn!(account_id = id, error = %e, "could not read the account's tokens for its usage");
            return Outcome::Unavailable;
        }
    };
    if tokens.is_empty() {
        return Outcome::Done;
    }
    let mut failure = None;
    for (_request, token) in &tokens {
        match app.oauth.read_usage(token, id).await {
            None => return Outcome::Done,
            Some(Ok(reading)) => {
                store(app, id, &reading).await;
                return Outcome::Done;
            }
            Some(Err(UsageError::Unauthorized)) => {
                failure = Some(UsageError::Unauthorized);
            }
            Some(Err(UsageError::Unavailable(reason))) => {
                tracing::warn!(
                    account_id = id,
                    ?reason,
                    "usage endpoint unavailable; backing off"
                );
                return Outcome::Unavailable;
            }
            Some(Err(e @ UsageError::Invalid(_))) => {
                failure = Some(e);
                break;
            }
        }
    }
    let reason = match failure {
        Some(UsageError::Unauthorized) => format!(
            "the provider refused every live access token of the account ({})",
            tokens.len()
        ),
        Some(e) => e.to_string(),
        None => return Outcome::Done,
    };
    tracing::warn!(
        account_id = id,
        ?reason,
        "usage reading failed; the last reading stands"
    );
    if let Err(e) = db::usage::record_error(&app.db, id, &reason, time::now()).await {
        tracing::warn!(account_id = id, error = %e, "could not record the usage error");
    }
    Outcome::Done
}

/// Stores `reading`, sets the gauges, and queues `account.quota_high` for each window at or
/// over `notify.quota_warning_percent` (once per window per reset: the store decides).
async fn store(app: &AppState, id: u32, reading: &Reading) {
    let threshold = app.config.notify.quota_warning_percent;
    let label = app.config.account(id).map(|a| a.label.clone());
    let mut crossed = Vec::new();
    for (window, value) in reading.windows() {
        let Some(w) = value else { continue };
        app.metrics.account_utilization(id, window, w.utilization);
        if w.utilization >= threshold {
            crossed.push(Crossed {
                window,
                reset_key: w.resets_at.map_or_else(|| "unknown".to_owned(), to_db),
                detail: json!({
                    "account_id": id,
                    "account_label": label,
                    "window": window,
                    "utilization": w.utilization,
                    "resets_at": w.resets_at,
                }),
            });
        }
    }
    match db::usage::record(&app.db, id, reading, &crossed, time::now()).await {
        Ok(warned) if warned > 0 => {
            tracing::warn!(
                account_id = id,
                warned,
                "an account's usage window is nearly full: account.quota_high queued"
            );
        }
        Ok(_) => tracing::debug!(account_id = id, "usage read"),
        Err(e) => tracing::warn!(account_id = id, error = %e, "could not store the usage reading"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_fifth_of_the_interval() {
        let interval = Duration::from_secs(600);
        for _ in 0..1000 {
            let d = jittered(interval);
            assert!(
                d >= Duration::from_secs(480) && d <= Duration::from_secs(720),
                "{d:?}"
            );
        }
    }
}

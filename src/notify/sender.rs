//! The one task that delivers the outbox, off the request path: a slow or dead receiver
//! never slows an API call.
//!
//! Each webhook's rows go in id order: only its oldest pending row is ever attempted, so a
//! receiver sees events in the order they committed. Any 2xx is delivered. A 408, a 429, a
//! 5xx or a transport error is retried with exponential backoff and jitter (from 1 s, at most
//! 10 min) until `notify.max_attempts`; any other answer fails the row at once. A restart
//! resumes whatever is pending, so delivery is at least once; `X-Auth-Router-Delivery` lets
//! a receiver drop duplicates.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use http::StatusCode;
use rand::Rng;
use secrecy::ExposeSecret;
use tokio::sync::watch;

use super::{sign, Hook, Outbox};
use crate::db::{deliveries, Db};
use crate::domain::time;
use crate::metrics::Metrics;
use crate::oauth::describe_reqwest;

/// The first retry's delay, doubled per attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// How long the sender sleeps when nothing is due and nothing new arrives.
const IDLE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Settings {
    pub timeout: Duration,
    pub max_attempts: u32,
}

/// What one attempt came to.
enum Attempt {
    Delivered,
    Retry(String),
    Failed(String),
}

/// Delivers until `stop` turns true.
pub async fn run(
    db: Db,
    outbox: Arc<Outbox>,
    http: reqwest::Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    if outbox.hooks.is_empty() {
        return;
    }
    if let Err(e) = deliveries::fail_unconfigured(&db, outbox.hooks.len() as u32, time::now()).await
    {
        tracing::warn!(error = %e, "could not close deliveries of removed webhooks");
    }
    loop {
        let next = match deliver_due(&db, &outbox, &http, &settings, &metrics).await {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(error = %e, "webhook delivery pass failed; retrying");
                Some(FIRST_BACKOFF)
            }
        };
        tokio::select! {
            _ = outbox.work.notified() => {}
            _ = tokio::time::sleep(next.unwrap_or(IDLE)) => {}
            _ = stop.changed() => break,
        }
    }
    tracing::info!("webhook sender stopped");
}

/// Sends every webhook's due rows, in order; returns how long until the next one is due.
async fn deliver_due(
    db: &Db,
    outbox: &Outbox,
    http: &reqwest::Client,
    settings: &Settings,
    metrics: &Metrics,
) -> Result<Option<Duration>, crate::db::StoreError> {
    let mut next: Option<Duration> = None;
    for hook in &outbox.hooks {
        while let Some(row) = deliveries::oldest_pending(db, hook.index).await? {
            let now = time::now();
            if row.next_attempt_at > now {
                let wait = (row.next_attempt_at - now).to_std().unwrap_or_default();
                next = Some(next.map_or(wait, |n| n.min(wait)));
                break;
            }
            // Another router sends it (PostgreSQL); this webhook's later rows wait for it.
            let Some(claim) = deliveries::claim(db, hook.index, row).await? else {
                break;
            };
            let row = &claim.due;
            if row.webhook_key != hook.key {
                let error = "the webhook's URL changed after this event was queued";
                claim.failed(db, error, None, now).await?;
                continue;
            }
            match attempt(http, hook, row, settings.timeout).await {
                Attempt::Delivered => {
                    claim.delivered(db, time::now()).await?;
                    metrics.webhook(hook.index, "delivered");
                }
                Attempt::Failed(error) => {
                    tracing::warn!(webhook = hook.index, event = %row.event_type, %error, "webhook delivery failed; not retried");
                    claim.failed(db, &error, None, time::now()).await?;
                    metrics.webhook(hook.index, "failed");
                }
                Attempt::Retry(error) => {
                    let attempts = row.attempts + 1;
                    if attempts >= i64::from(settings.max_attempts) {
                        let error = format!("{error}; gave up after {attempts} attempts");
                        tracing::warn!(webhook = hook.index, event = %row.event_type, %error, "webhook delivery failed");
                        claim.failed(db, &error, None, time::now()).await?;
                        metrics.webhook(hook.index, "failed");
                        continue;
                    }
                    let wait = backoff(attempts);
                    let retry_at = retry_time(time::now(), wait);
                    tracing::info!(webhook = hook.index, event = %row.event_type, %error, retry_in_ms = wait.as_millis() as u64, "webhook delivery will be retried");
                    claim
                        .failed(db, &error, Some(retry_at), time::now())
                        .await?;
                    metrics.webhook(hook.index, "retried");
                    next = Some(next.map_or(wait, |n| n.min(wait)));
                    break;
                }
            }
        }
    }
    Ok(next)
}

async fn attempt(
    http: &reqwest::Client,
    hook: &Hook,
    row: &deliveries::Due,
    timeout: Duration,
) -> Attempt {
    let mut request = http
        .post(hook.url.expose_secret())
        .timeout(timeout)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("x-auth-router-event", &row.event_type)
        .header("x-auth-router-delivery", &row.event_id)
        .body(row.body.clone());
    if let Some(secret) = &hook.secret {
        let signature = sign::signature(
            secret.expose_secret().as_bytes(),
            Utc::now().timestamp(),
            row.body.as_bytes(),
        );
        request = request.header("x-auth-router-signature", signature);
    }
    match request.send().await {
        Ok(answer) => {
            let status = answer.status();
            if status.is_success() {
                Attempt::Delivered
            } else if status.is_server_error()
                || status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::REQUEST_TIMEOUT
            {
                Attempt::Retry(format!("the receiver answered {status}"))
            } else {
                Attempt::Failed(format!("the receiver answered {status}"))
            }
        }
        // The error never names the URL: it is a secret.
        Err(e) => Attempt::Retry(describe_reqwest(e, "the webhook")),
    }
}

/// The delay after the `attempts`-th failure: 1 s doubled per attempt, at most 10 min, each
/// within ±25% so that many rows failing together do not come back together.
fn backoff(attempts: i64) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(20);
    let base = FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF);
    let jitter = rand::thread_rng().gen_range(0.75..=1.25);
    base.mul_f64(jitter).min(MAX_BACKOFF)
}

fn retry_time(now: DateTime<Utc>, wait: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(wait)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_near_a_second_doubles_and_stops_at_ten_minutes() {
        for _ in 0..50 {
            let first = backoff(1);
            assert!(first >= Duration::from_millis(750) && first <= Duration::from_millis(1250));
            let fourth = backoff(4);
            assert!(fourth >= Duration::from_secs(6) && fourth <= Duration::from_secs(10));
            assert!(backoff(30) <= MAX_BACKOFF && backoff(30) >= Duration::from_secs(450));
        }
    }
}

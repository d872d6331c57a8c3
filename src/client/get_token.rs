//! [`RouterClient::get_token`]: a cached token when it is fresh enough, a refresh through the
//! router when it is not, and a new request (waiting politely for an operator) otherwise.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use uuid::Uuid;

use super::cache::{Cache, Entry, Renewal};
use super::{ClientError, Created, Event, Poll, Progress, RouterClient, Token, TokenOptions};
use crate::domain::Status;

/// RFC 8628 §3.5: on `slow_down`, the interval grows by 5 seconds.
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
/// The longest wait between tries while the router is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Never poll faster than this, whatever the router says.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// How long past the request's deadline we keep asking, for clocks that disagree.
const EXPIRY_GRACE: Duration = Duration::from_secs(5);
/// How long each long poll asks the router to hold its answer (`?wait=`).
const LONG_POLL_SECS: u64 = 25;
/// A long poll answered faster than this with an unchanged status was not held (a router
/// that ignores `wait`): the next poll then waits the interval, so the client never spins.
const HELD_AT_LEAST: Duration = Duration::from_millis(500);

/// A cached login whose refresh token dies sooner than this is renewed: a new request is
/// opened while the old token is still used.
const RENEW_BEFORE: Duration = Duration::from_secs(24 * 3600);

/// The open request to cancel if waiting is interrupted.
type OpenRequest = Mutex<Option<(Uuid, String)>>;

impl RouterClient {
    /// Returns a token with at least `min_validity` left. Completing `interrupt` (Ctrl-C, say)
    /// cancels the request being waited on, if any, and returns [`ClientError::Interrupted`].
    pub async fn get_token(
        &self,
        options: &TokenOptions,
        progress: &dyn Progress,
        interrupt: impl Future<Output = ()>,
    ) -> Result<Token, ClientError> {
        let open: OpenRequest = Mutex::new(None);
        tokio::select! {
            result = self.get_or_create(options, progress, &open) => result,
            _ = interrupt => {
                let waiting = open.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some((request_id, poll_token)) = waiting {
                    // Best effort: the operator should not see a request nobody waits for.
                    let _ = self.cancel(request_id, &poll_token).await;
                    progress.event(&Event::Cancelled { request_id });
                }
                Err(ClientError::Interrupted)
            }
        }
    }

    async fn get_or_create(
        &self,
        options: &TokenOptions,
        progress: &dyn Progress,
        open: &OpenRequest,
    ) -> Result<Token, ClientError> {
        let cache = options.cache_dir.as_ref().map(|dir| {
            Cache::new(
                dir,
                self.router(),
                &options.client_name,
                &options.scopes,
                options.lifetime_secs,
            )
        });
        let _lock = match &cache {
            Some(cache) => Some(cache.lock().await?),
            None => None,
        };
        let mut pending_renewal = None;
        if let Some(cache) = &cache {
            if let Some(mut entry) = cache.read() {
                pending_renewal = self.check_renewal(&mut entry, cache, progress).await?;
                let now = Utc::now();
                if entry.token.valid_for(options.min_validity, now) {
                    self.renew_if_due(&mut entry, options, cache, progress)
                        .await?;
                    return Ok(entry.token);
                }
                // A long-lived token has nothing to refresh: it is used until it expires.
                if options.lifetime_secs.is_none() {
                    match self.refresh(entry.request_id, &entry.poll_token).await {
                        Ok(mut token) => {
                            token.account_id = entry.token.account_id;
                            progress.event(&Event::Refreshed);
                            entry.token = token;
                            cache.store(&entry)?;
                            self.renew_if_due(&mut entry, options, cache, progress)
                                .await?;
                            return Ok(entry.token);
                        }
                        Err(e)
                            if e.is_transient() && entry.token.valid_for(Duration::ZERO, now) =>
                        {
                            progress.event(&Event::UsingCachedAfterError {
                                reason: e.to_string(),
                            });
                            return Ok(entry.token);
                        }
                        Err(e) if e.is_transient() => return Err(e),
                        Err(e) => progress.event(&Event::RefreshRejected {
                            reason: e.to_string(),
                        }),
                    }
                }
            }
        }

        // A renewal already waiting for an operator is the new request: waiting on it
        // instead of opening another keeps the operator's list to one.
        let created = match pending_renewal {
            Some(renewal) => renewal,
            None => self.create(options).await?,
        };
        *open.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((created.request_id, created.poll_token.clone()));
        progress.event(&Event::Created {
            request_id: created.request_id,
            expires_at: created.expires_at,
        });
        let token = self.wait(&created, options, progress).await;
        *open.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let token = token?;
        if let Some(cache) = &cache {
            cache.write(created.request_id, &created.poll_token, &token)?;
        }
        Ok(token)
    }

    /// Looks once at the renewal the cached login waits on, if any: approved, its token
    /// replaces the cached one; ended otherwise, it is forgotten (a later call opens another
    /// if the login is still due); unreachable, it stays. Still open, it is returned as the
    /// request to wait on should the cached token be unusable, so that the operator's list
    /// keeps one request.
    async fn check_renewal(
        &self,
        entry: &mut Entry,
        cache: &Cache,
        progress: &dyn Progress,
    ) -> Result<Option<Created>, ClientError> {
        let Some(renewal) = entry.renewal.clone() else {
            return Ok(None);
        };
        let reply = match self
            .status(renewal.request_id, &renewal.poll_token, None)
            .await
        {
            Ok(Poll::Status(reply)) => reply,
            Ok(_) => return Ok(None),
            Err(e) if e.is_transient() => return Ok(None),
            Err(_) => {
                entry.renewal = None;
                cache.store(entry)?;
                return Ok(None);
            }
        };
        match (reply.status, reply.token) {
            (Status::Approved, Some(mut token)) => {
                token.account_id = reply.account_id;
                *entry = cache.entry(renewal.request_id, &renewal.poll_token, &token);
                progress.event(&Event::Renewed);
            }
            (status, _) if status.is_terminal() => entry.renewal = None,
            (status, _) => {
                return Ok(Some(Created {
                    request_id: renewal.request_id,
                    status,
                    poll_token: renewal.poll_token,
                    expires_at: reply.expires_at,
                    poll_interval_secs: reply.poll_interval_secs,
                }))
            }
        }
        cache.store(entry)?;
        Ok(None)
    }

    /// Opens a new request when the cached login's refresh token dies within
    /// [`RENEW_BEFORE`] and none is open yet. The cached token stays in use meanwhile; a
    /// router that refuses (or cannot be reached) is asked again next time.
    async fn renew_if_due(
        &self,
        entry: &mut Entry,
        options: &TokenOptions,
        cache: &Cache,
        progress: &dyn Progress,
    ) -> Result<(), ClientError> {
        let Some(deadline) = entry.token.refresh_expires_at else {
            return Ok(());
        };
        let due =
            deadline - Utc::now() < chrono::Duration::from_std(RENEW_BEFORE).unwrap_or_default();
        if !due || entry.renewal.is_some() {
            return Ok(());
        }
        let Ok(created) = self.create(options).await else {
            return Ok(());
        };
        entry.renewal = Some(Renewal {
            request_id: created.request_id,
            poll_token: created.poll_token,
        });
        progress.event(&Event::Renewing {
            request_id: created.request_id,
            refresh_expires_at: deadline,
        });
        cache.store(entry)
    }

    /// Polls until the request ends, the router's deadline passes or `--timeout` runs out.
    async fn wait(
        &self,
        created: &Created,
        options: &TokenOptions,
        progress: &dyn Progress,
    ) -> Result<Token, ClientError> {
        let id = created.request_id;
        let started = Instant::now();
        let mut pacing = Pacing::new(created.poll_interval_secs);
        // Long polls first: the router answers as soon as something changes. A router that
        // refuses `wait` (400) is polled at its interval instead.
        let mut long_poll = true;
        let mut delay = Duration::ZERO;
        let mut last_status = None;
        loop {
            let mut wait = long_poll.then_some(LONG_POLL_SECS);
            if let Some(timeout) = options.timeout {
                let left = timeout.saturating_sub(started.elapsed());
                if left < delay || (delay.is_zero() && left.is_zero()) {
                    tokio::time::sleep(left).await;
                    let _ = self.cancel(id, &created.poll_token).await;
                    return Err(ClientError::TimedOut {
                        request_id: id,
                        waited: timeout,
                    });
                }
                wait = wait.map(|w| w.min(left.saturating_sub(delay).as_secs()));
            }
            tokio::time::sleep(delay).await;
            let deadline =
                created.expires_at + chrono::Duration::from_std(EXPIRY_GRACE).unwrap_or_default();
            let asked = Instant::now();
            match self.status(id, &created.poll_token, wait).await {
                Ok(Poll::WaitUnsupported) => {
                    long_poll = false;
                    delay = pacing.answered();
                }
                Ok(Poll::Status(reply)) => {
                    let interval = pacing.answered();
                    let held = asked.elapsed() >= HELD_AT_LEAST;
                    let changed = last_status != Some(reply.status);
                    delay = match wait {
                        Some(w) if w > 0 && (held || changed) => Duration::ZERO,
                        _ => interval,
                    };
                    last_status = Some(reply.status);
                    match reply.status {
                        Status::Approved => {
                            progress.event(&Event::Approved {
                                account_id: reply.account_id,
                            });
                            let mut token = reply.token.ok_or_else(|| ClientError::Router {
                                status: 200,
                                code: "no_token".into(),
                                message: "the request is approved but the router sent no token"
                                    .into(),
                            })?;
                            token.account_id = reply.account_id;
                            return Ok(token);
                        }
                        Status::Denied => {
                            return Err(ClientError::Denied {
                                request_id: id,
                                error: reply.error,
                            })
                        }
                        Status::Expired => return Err(ClientError::Expired { request_id: id }),
                        Status::Cancelled => return Err(ClientError::Cancelled { request_id: id }),
                        Status::Error => {
                            return Err(ClientError::Failed {
                                request_id: id,
                                error: reply.error,
                            })
                        }
                        Status::Revoked => {
                            let error = Some("an operator revoked it".to_owned());
                            return Err(ClientError::Failed {
                                request_id: id,
                                error,
                            });
                        }
                        Status::Pending | Status::InProgress => {
                            progress.event(&Event::Waiting {
                                status: reply.status,
                                account_id: reply.account_id,
                            });
                        }
                    }
                }
                Ok(Poll::SlowDown { retry_after }) => {
                    delay = pacing.slow_down(retry_after);
                    progress.event(&Event::SlowDown {
                        interval: pacing.interval,
                    });
                }
                Err(e) if e.is_transient() => {
                    delay = pacing.unreachable();
                    progress.event(&Event::Retrying {
                        reason: e.to_string(),
                        retry_in: delay,
                    });
                }
                Err(e) => return Err(e),
            }
            if Utc::now() > deadline {
                return Err(ClientError::Expired { request_id: id });
            }
        }
    }
}

/// When to poll next: the router's interval, grown by 5 s on every slow_down, and a doubling
/// backoff (up to a minute) while the router cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pacing {
    interval: Duration,
    backoff: Option<Duration>,
}

impl Pacing {
    fn new(poll_interval_secs: u64) -> Self {
        Self {
            interval: Duration::from_secs(poll_interval_secs).max(MIN_INTERVAL),
            backoff: None,
        }
    }

    /// The router answered: back to the plain interval.
    fn answered(&mut self) -> Duration {
        self.backoff = None;
        self.interval
    }

    /// A 429: poll less often from now on, and not before the router's Retry-After.
    fn slow_down(&mut self, retry_after: Option<Duration>) -> Duration {
        self.interval += SLOW_DOWN_STEP;
        retry_after.unwrap_or(self.interval).max(self.interval)
    }

    /// No answer: wait twice as long as last time, at most [`MAX_BACKOFF`].
    fn unreachable(&mut self) -> Duration {
        let next = self
            .backoff
            .map_or(self.interval * 2, |b| b * 2)
            .min(MAX_BACKOFF);
        self.backoff = Some(next);
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn slow_down_adds_five_seconds_for_good_and_honours_a_longer_retry_after() {
        let mut p = Pacing::new(5);
        assert_eq!(
            p.slow_down(Some(S(2))),
            S(10),
            "never sooner than the grown interval"
        );
        assert_eq!(
            p.slow_down(Some(S(30))),
            S(30),
            "Retry-After when it is longer"
        );
        assert_eq!(p.answered(), S(15), "the interval stays grown");
    }

    #[test]
    fn an_unreachable_router_is_retried_with_doubling_waits_up_to_a_minute() {
        let mut p = Pacing::new(5);
        let waits: Vec<Duration> = (0..5).map(|_| p.unreachable()).collect();
        assert_eq!(waits, [S(10), S(20), S(40), S(60), S(60)]);
        assert_eq!(p.answered(), S(5));
        assert_eq!(
            p.unreachable(),
            S(10),
            "the backoff starts over after an answer"
        );
    }

    #[test]
    fn a_zero_interval_from_the_router_still_waits_a_second() {
        assert_eq!(Pacing::new(0).answered(), S(1));
    }
}

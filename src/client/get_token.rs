//! [`RouterClient::get_token`]: a cached token when it is fresh enough, a refresh through the
//! router when it is not, and a new request (waiting politely for an operator) otherwise.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use uuid::Uuid;

use super::cache::Cache;
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
        let cache = options
            .cache_dir
            .as_ref()
            .map(|dir| Cache::new(dir, self.router(), &options.client_name, &options.scopes));
        let _lock = match &cache {
            Some(cache) => Some(cache.lock().await?),
            None => None,
        };
        if let Some(entry) = cache.as_ref().and_then(Cache::read) {
            let now = Utc::now();
            if entry.token.valid_for(options.min_validity, now) {
                return Ok(entry.token);
            }
            match self.refresh(entry.request_id, &entry.poll_token).await {
                Ok(token) => {
                    progress.event(&Event::Refreshed);
                    if let Some(cache) = &cache {
                        cache.write(entry.request_id, &entry.poll_token, &token)?;
                    }
                    return Ok(token);
                }
                Err(e) if e.is_transient() && entry.token.valid_for(Duration::ZERO, now) => {
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

        let created = self
            .create(&options.client_name, &options.hostname, &options.scopes)
            .await?;
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

    /// Polls until the request ends, the router's deadline passes or `--timeout` runs out.
    async fn wait(
        &self,
        created: &Created,
        options: &TokenOptions,
        progress: &dyn Progress,
    ) -> Result<Token, ClientError> {
        let id = created.request_id;
        let started = Instant::now();
        let mut interval = Duration::from_secs(created.poll_interval_secs).max(MIN_INTERVAL);
        let mut delay = interval;
        let mut backoff: Option<Duration> = None;
        loop {
            if let Some(timeout) = options.timeout {
                let left = timeout.saturating_sub(started.elapsed());
                if left < delay {
                    tokio::time::sleep(left).await;
                    let _ = self.cancel(id, &created.poll_token).await;
                    return Err(ClientError::TimedOut {
                        request_id: id,
                        waited: timeout,
                    });
                }
            }
            tokio::time::sleep(delay).await;
            let deadline =
                created.expires_at + chrono::Duration::from_std(EXPIRY_GRACE).unwrap_or_default();
            match self.status(id, &created.poll_token).await {
                Ok(Poll::Status(reply)) => {
                    backoff = None;
                    delay = interval;
                    match reply.status {
                        Status::Approved => {
                            progress.event(&Event::Approved {
                                account_id: reply.account_id,
                            });
                            return reply.token.ok_or_else(|| ClientError::Router {
                                status: 200,
                                code: "no_token".into(),
                                message: "the request is approved but the router sent no token"
                                    .into(),
                            });
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
                    interval += SLOW_DOWN_STEP;
                    delay = retry_after.unwrap_or(interval).max(interval);
                    progress.event(&Event::SlowDown { interval });
                }
                Err(e) if e.is_transient() => {
                    let next = backoff.map_or(interval * 2, |b| b * 2).min(MAX_BACKOFF);
                    backoff = Some(next);
                    delay = next;
                    progress.event(&Event::Retrying {
                        reason: e.to_string(),
                        retry_in: next,
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

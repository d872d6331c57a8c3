//! The client side: [`RouterClient`] talks to a router over its HTTP API, and
//! [`RouterClient::get_token`] is the whole "give me a usable access token" logic of the
//! `claude-auth-router token` command, for Rust programs to embed.
//!
//! ```no_run
//! # async fn demo() -> Result<(), claude_auth_router::client::ClientError> {
//! use claude_auth_router::client::{NoProgress, RouterClient, TokenOptions};
//!
//! let client = RouterClient::new("http://127.0.0.1:7777")?;
//! let options = TokenOptions::new("my-tool", "my-laptop");
//! let token = client.get_token(&options, &NoProgress, std::future::pending()).await?;
//! println!("{}", token.access_token);
//! # Ok(()) }
//! ```

pub mod admin;
mod cache;
pub mod command;
mod error;
mod get_token;
mod http;

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::Status;

pub use cache::default_cache_dir;
pub use error::ClientError;
pub use http::{Poll, RouterClient};

/// What [`RouterClient::get_token`] needs to know.
#[derive(Debug, Clone)]
pub struct TokenOptions {
    pub client_name: String,
    pub hostname: String,
    /// Empty: the router's default scopes.
    pub scopes: Vec<String>,
    /// Where tokens are cached; `None` disables the cache (and its lock).
    pub cache_dir: Option<PathBuf>,
    /// A cached token with less time left than this is refreshed first.
    pub min_validity: Duration,
    /// Give up waiting for approval after this long (the request's own deadline applies too).
    pub timeout: Option<Duration>,
    /// The enrolled client's key: the request is then verified and bound to that client.
    pub client_key: Option<secrecy::SecretString>,
    /// Ask for a long-lived token of this many seconds (nothing to refresh: it is cached
    /// until it expires).
    pub lifetime_secs: Option<u64>,
}

impl TokenOptions {
    pub fn new(client_name: &str, hostname: &str) -> Self {
        Self {
            client_name: client_name.to_owned(),
            hostname: hostname.to_owned(),
            scopes: Vec::new(),
            cache_dir: None,
            min_validity: Duration::from_secs(300),
            timeout: None,
            client_key: None,
            lifetime_secs: None,
        }
    }
}

/// A usable token, as the router hands it out. `Debug` shows neither token.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub token_type: String,
    pub scope: String,
    /// The account that approved it, as the status answer said (the token object itself
    /// does not carry it; older caches lack it).
    #[serde(default)]
    pub account_id: Option<u32>,
    /// When the router's refresh token for it dies for good: a new login is due before.
    #[serde(default)]
    pub refresh_expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("access_token", &"[redacted]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("expires_at", &self.expires_at)
            .field("token_type", &self.token_type)
            .field("scope", &self.scope)
            .field("refresh_expires_at", &self.refresh_expires_at)
            .finish()
    }
}

impl Token {
    /// Whether the token stays usable for at least `min` more. A token whose provider gave no
    /// lifetime counts as usable: there is nothing to compare.
    pub fn valid_for(&self, min: Duration, now: DateTime<Utc>) -> bool {
        let min = chrono::Duration::from_std(min).unwrap_or(chrono::Duration::MAX);
        self.expires_at.is_none_or(|at| at - now > min)
    }
}

/// The answer to `POST /v1/token-requests`.
#[derive(Clone, Deserialize)]
pub struct Created {
    pub request_id: Uuid,
    pub status: Status,
    pub poll_token: String,
    pub expires_at: DateTime<Utc>,
    pub poll_interval_secs: u64,
}

/// The answer to `GET /v1/token-requests/{id}/status`.
#[derive(Debug, Clone, Deserialize)]
pub struct StatusReply {
    pub request_id: Uuid,
    pub status: Status,
    pub account_id: Option<u32>,
    pub token: Option<Token>,
    pub error: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub poll_interval_secs: u64,
}

/// What happens while a token is being obtained, for a front end to show.
#[derive(Debug, Clone)]
pub enum Event {
    /// A new request was created and waits for an operator.
    Created {
        request_id: Uuid,
        expires_at: DateTime<Utc>,
    },
    /// A poll came back still open.
    Waiting {
        status: Status,
        account_id: Option<u32>,
    },
    /// The router could not be reached or was busy; the next try is after `retry_in`.
    Retrying { reason: String, retry_in: Duration },
    /// The router asked us to poll less often.
    SlowDown { interval: Duration },
    /// A cached token was refreshed through the router.
    Refreshed,
    /// The refresh was refused; a new request follows.
    RefreshRejected { reason: String },
    /// The refresh failed for now, and the cached token, still valid, is used.
    UsingCachedAfterError { reason: String },
    /// The request was approved.
    Approved { account_id: Option<u32> },
    /// Waiting was interrupted and the request cancelled on the router.
    Cancelled { request_id: Uuid },
    /// The cached token's login dies soon, so a new request was opened; the cached token is
    /// used while it waits.
    Renewing {
        request_id: Uuid,
        refresh_expires_at: DateTime<Utc>,
    },
    /// The new login asked for by [`Event::Renewing`] was approved and replaces the old.
    Renewed,
}

/// Receives [`Event`]s. Called from the waiting task, so keep it quick.
pub trait Progress: Sync {
    fn event(&self, event: &Event);
}

/// Shows nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _: &Event) {}
}

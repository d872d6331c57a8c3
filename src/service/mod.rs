//! The layer between the HTTP routes (and the policy, the reaper) and the store: the state
//! every use case shares, and what follows a commit, in one place ([`effects`]).
//!
//! The store (`db`) only stores: it knows nothing of caches, waiters or webhooks. Its
//! commits call [`Effects`] through its hooks, and the use cases here go through it.

pub mod cache;
pub mod effects;
pub mod flow;
pub mod shared;
pub mod waiters;

use std::sync::Arc;

use crate::config::Config;
use crate::control_browser::ControlBrowser;
use crate::db::batch::InsertBatcher;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::oauth::OAuthClient;
use crate::single_flight::KeyedLocks;
use crate::throttle::{CreateLimiter, GuessBudget, PollPacer};

pub use effects::Effects;

/// Built once at startup. Handlers and middleware clone it on every request, so it is one
/// `Arc` (a single reference count) rather than a struct of many.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What every handler can reach.
pub struct Shared {
    pub db: Db,
    /// The status poll's cache, the long-poll waiters and the webhooks: what follows a
    /// commit ([`Effects`]).
    pub effects: Arc<Effects>,
    pub config: Arc<Config>,
    pub oauth: Arc<OAuthClient>,
    pub control_browser: Arc<ControlBrowser>,
    /// SHA-256 of the admin token, compared in constant time like every secret.
    pub admin_token_hash: Arc<Vec<u8>>,
    /// What console sessions are bound to: see [`crate::domain::secret::session_binding`].
    pub session_binding: Arc<Vec<u8>>,
    /// SHA-256 of the control browser's submit token, when one is configured.
    pub submit_token_hash: Option<Vec<u8>>,
    /// One refresh per request at a time.
    pub refresh_locks: Arc<KeyedLocks>,
    /// RFC 8628 slow_down for status polls.
    pub poll_pacer: Arc<PollPacer>,
    /// The per-IP budget for creating requests.
    pub create_limiter: Arc<CreateLimiter>,
    /// `limits.trusted_proxies`, parsed once.
    pub trusted_proxies: Vec<crate::domain::peer::Cidr>,
    /// The per-IP budget of wrong admin tokens, submit tokens and console sign-ins.
    pub guesses: Arc<GuessBudget>,
    pub metrics: Arc<Metrics>,
    /// When the reaper last completed a pass, for `/readyz`.
    pub reaper_health: Arc<crate::reaper::Health>,
    /// The client webhooks are sent with (no proxy: receivers are the team's own).
    pub webhook_http: reqwest::Client,
    /// Creates go through one writer that commits them in groups.
    pub creates: InsertBatcher,
}

//! `claude-auth-router` brokers OAuth logins for a team.
//!
//! An employee's CLI asks for a token (`POST /v1/token-requests`) and polls for the outcome
//! with a secret poll token. An operator picks which of the team's provider accounts approves
//! it; the router builds the authorize URL (PKCE, single-use state) with the `oauth2` crate and
//! asks the control browser to open it in that account's session. The provider redirects to
//! the router's callback, the router exchanges the code and stores the tokens in SQLite, and
//! the polling CLI receives them.
//!
//! # Layout
//! - [`config`]: the settings, from defaults, `config.toml` and `AUTH_ROUTER_*` variables,
//!   validated before anything binds.
//! - [`domain`]: what a token request is: statuses and the allowed transitions, input
//!   validation, token bundles, and how secrets are generated, hashed and compared.
//! - [`crypto`]: encryption at rest of the tokens and verifiers the router keeps.
//! - [`db`]: the store: the SQLite pools and one small function per statement, and nothing
//!   above it.
//! - [`oauth`]: the `oauth2` client: authorize URLs with PKCE, the code exchange, refresh
//!   and revocation.
//! - [`egress`]: the outgoing HTTP clients, and which proxy a provider call goes through.
//! - [`control_browser`]: the client for the Electron app that opens logins per account.
//! - [`routes`]: the HTTP API, one file per resource.
//! - [`service`]: the layer above the store: the state every use case shares, and what
//!   follows a commit (caches dropped, long polls woken, webhooks sent), in one place.
//! - [`policy`]: approving enrolled clients' requests without an operator.
//! - [`reaper`]: the background task that expires stale requests.
//! - [`single_flight`]: per-request locks so one refresh at a time reaches the provider.
//! - [`throttle`]: `slow_down` pacing of polls and the per-IP budget for creating requests.
//! - [`error`]: the one error type, and how it maps to HTTP.
//! - [`metrics`]: the Prometheus registry behind `GET /metrics`.
//! - [`notify`]: webhooks: events queued with the changes they report, and their sender.
//! - [`client`]: the other side: `RouterClient` and the `token` command that employees run.
//! - [`ops`]: the admin's maintenance commands: check-config, backup, rekey.
//! - [`serve`]: the listeners: hyper's HTTP/1 server with the connection-level limits
//!   (connection caps, idle, header-read and write deadlines, shutdown grace).
//! - [`startup`]: wiring it together, serving, and shutting down cleanly.
//! - [`tasks`]: supervision of the background tasks, so a panic restarts them.
//! - [`telemetry`]: logging set-up.

pub mod client;
pub mod config;
pub mod control_browser;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod egress;
pub mod error;
pub mod metrics;
pub mod notify;
pub mod oauth;
pub mod ops;
pub mod policy;
pub mod quota;
pub mod reaper;
pub mod routes;
pub mod serve;
pub mod service;
pub mod single_flight;
pub mod startup;
pub mod tasks;
pub mod telemetry;
pub mod throttle;

pub use config::Config;
pub use error::{Error, Result};
pub use startup::Application;

//! The one error type: what went wrong in a use case, each variant with its stable
//! machine-readable code. How each variant answers over HTTP is the routes' business
//! (`routes/answer.rs`).
//!
//! No variant carries a secret: messages are written for the client to read.

use crate::domain::Status;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    LifetimeNotAllowed(String),
    #[error("{0}")]
    InvalidScope(String),
    #[error("these tokens have no refresh token (a long-lived token): request new ones when they expire")]
    NotRefreshable,
    #[error("the request id must be a UUID")]
    InvalidRequestId,
    #[error("a valid bearer token is required (Authorization: Bearer …)")]
    Unauthorized,
    #[error("this router accepts requests from enrolled clients only: send the client key (Authorization: Bearer …; the CLI reads --client-key-file or AUTH_ROUTER_CLIENT_KEY)")]
    ClientKeyRequired,
    #[error("account {0} is not one this request's client may use")]
    AccountNotAllowed(u32),
    #[error("account {0} is paused; resume it first, or choose another")]
    AccountPaused(u32),
    #[error("a client named {0:?} exists already")]
    ClientExists(String),
    #[error("no enrolled client has this id")]
    ClientNotFound,
    #[error("no token request has this id")]
    RequestNotFound,
    #[error("the request is {status}; this action needs a request that is {needs}")]
    InvalidStatus { status: Status, needs: &'static str },
    #[error("account {0} is not one of the configured [[accounts]]")]
    UnknownAccount(u32),
    #[error("{0}")]
    InvalidCallback(&'static str),
    #[error("{0}")]
    InvalidCode(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("the control browser did not open the login: {0}")]
    ControlBrowserFailed(String),
    #[error("the token exchange with the provider failed: {0}")]
    ExchangeFailed(String),
    #[error("the provider logged in {actual}, not {expected}, the address configured for this account; the tokens were discarded. Check which account the control browser's profile is signed in to")]
    AccountMismatch { expected: String, actual: String },
    #[error("the provider refused to refresh these tokens ({0}); request new ones")]
    RefreshRejected(String),
    #[error("the provider could not be reached or failed: {0}")]
    UpstreamFailed(String),
    #[error("the request body must be JSON, sent with Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("the request body is larger than the 64 KiB limit")]
    PayloadTooLarge,
    #[error("there is nothing at this path")]
    RouteNotFound,
    #[error("this path does not take this method")]
    MethodNotAllowed,
    #[error("the database is busy; retry in a moment")]
    Busy,
    #[error("polling too fast: wait the poll interval between status polls")]
    SlowDown { retry_after: std::time::Duration },
    #[error("{message}")]
    RateLimited {
        retry_after: std::time::Duration,
        message: String,
    },
    #[error("the router took too long to answer this request")]
    Timeout,
    #[error("the router is handling too many requests; retry in a moment")]
    Overloaded,
    #[error("{0}")]
    NotReady(String),
    #[error("database error")]
    Database(#[source] crate::db::StoreError),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl Error {
    /// The stable, machine-readable `error` field.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidRequest(_) => "invalid_request",
            Error::InvalidRequestId => "invalid_request_id",
            Error::LifetimeNotAllowed(_) => "lifetime_not_allowed",
            Error::InvalidScope(_) => "invalid_scope",
            Error::NotRefreshable => "not_refreshable",
            Error::Unauthorized | Error::ClientKeyRequired => "unauthorized",
            Error::AccountNotAllowed(_) => "account_not_allowed",
            Error::AccountPaused(_) => "account_paused",
            Error::ClientExists(_) => "client_exists",
            Error::ClientNotFound => "client_not_found",
            Error::RequestNotFound => "request_not_found",
            Error::InvalidStatus { .. } => "invalid_status",
            Error::UnknownAccount(_) => "unknown_account",
            Error::InvalidCallback(_) => "invalid_callback",
            Error::InvalidCode(_) => "invalid_code",
            Error::Forbidden(_) => "forbidden",
            Error::ControlBrowserFailed(_) => "control_browser_failed",
            Error::ExchangeFailed(_) => "exchange_failed",
            Error::RefreshRejected(_) => "refresh_rejected",
            Error::AccountMismatch { .. } => "account_mismatch",
            Error::UpstreamFailed(_) => "upstream_failed",
            Error::UnsupportedMediaType => "unsupported_media_type",
            Error::PayloadTooLarge => "payload_too_large",
            Error::RouteNotFound => "not_found",
            Error::MethodNotAllowed => "method_not_allowed",
            Error::Busy => "busy",
            Error::SlowDown { .. } => "slow_down",
            Error::RateLimited { .. } => "rate_limited",
            Error::Timeout => "timeout",
            Error::Overloaded => "overloaded",
            Error::NotReady(_) => "not_ready",
            Error::Database(_) | Error::Internal(_) => "internal_error",
        }
    }

    /// A 409 for a request whose status does not allow the action.
    pub fn invalid_status(status: Status, needs: &'static str) -> Self {
        Error::InvalidStatus { status, needs }
    }
}

impl From<crate::db::StoreError> for Error {
    fn from(e: crate::db::StoreError) -> Self {
        if e.is_busy() {
            Error::Busy
        } else {
            Error::Database(e)
        }
    }
}

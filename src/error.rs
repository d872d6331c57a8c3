//! The one error type: what went wrong in a use case, each variant with its stable
//! machine-readable code. How each variant answers over HTTP is the routes' business
//! (`routes/answer.rs`).
//!
//! No variant carries a secret: messages are written for the client to read.

use serde::Serialize;

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
    #[error("the database cannot be reached; retry in a moment")]
    Unavailable,
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

/// The `error` field of every error answer: stable, machine-readable, and the same list the
/// OpenAPI document gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    InvalidRequestId,
    LifetimeNotAllowed,
    InvalidScope,
    NotRefreshable,
    Unauthorized,
    AccountNotAllowed,
    AccountPaused,
    ClientExists,
    ClientNotFound,
    RequestNotFound,
    InvalidStatus,
    UnknownAccount,
    InvalidCallback,
    InvalidCode,
    Forbidden,
    ControlBrowserFailed,
    ExchangeFailed,
    RefreshRejected,
    AccountMismatch,
    UpstreamFailed,
    UnsupportedMediaType,
    PayloadTooLarge,
    NotFound,
    MethodNotAllowed,
    Busy,
    Unavailable,
    SlowDown,
    RateLimited,
    Timeout,
    Overloaded,
    NotReady,
    InternalError,
}

/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorCode,
    /// What went wrong, in words for the person reading it; never a secret.
    pub message: String,
}

impl Error {
    /// The stable, machine-readable `error` field.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidRequest(_) => ErrorCode::InvalidRequest,
            Error::InvalidRequestId => ErrorCode::InvalidRequestId,
            Error::LifetimeNotAllowed(_) => ErrorCode::LifetimeNotAllowed,
            Error::InvalidScope(_) => ErrorCode::InvalidScope,
            Error::NotRefreshable => ErrorCode::NotRefreshable,
            Error::Unauthorized | Error::ClientKeyRequired => ErrorCode::Unauthorized,
            Error::AccountNotAllowed(_) => ErrorCode::AccountNotAllowed,
            Error::AccountPaused(_) => ErrorCode::AccountPaused,
            Error::ClientExists(_) => ErrorCode::ClientExists,
            Error::ClientNotFound => ErrorCode::ClientNotFound,
            Error::RequestNotFound => ErrorCode::RequestNotFound,
            Error::InvalidStatus { .. } => ErrorCode::InvalidStatus,
            Error::UnknownAccount(_) => ErrorCode::UnknownAccount,
            Error::InvalidCallback(_) => ErrorCode::InvalidCallback,
            Error::InvalidCode(_) => ErrorCode::InvalidCode,
            Error::Forbidden(_) => ErrorCode::Forbidden,
            Error::ControlBrowserFailed(_) => ErrorCode::ControlBrowserFailed,
            Error::ExchangeFailed(_) => ErrorCode::ExchangeFailed,
            Error::RefreshRejected(_) => ErrorCode::RefreshRejected,
            Error::AccountMismatch { .. } => ErrorCode::AccountMismatch,
            Error::UpstreamFailed(_) => ErrorCode::UpstreamFailed,
            Error::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
            Error::PayloadTooLarge => ErrorCode::PayloadTooLarge,
            Error::RouteNotFound => ErrorCode::NotFound,
            Error::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            Error::Busy => ErrorCode::Busy,
            Error::Unavailable => ErrorCode::Unavailable,
            Error::SlowDown { .. } => ErrorCode::SlowDown,
            Error::RateLimited { .. } => ErrorCode::RateLimited,
            Error::Timeout => ErrorCode::Timeout,
            Error::Overloaded => ErrorCode::Overloaded,
            Error::NotReady(_) => ErrorCode::NotReady,
            Error::Database(_) | Error::Internal(_) => ErrorCode::InternalError,
        }
    }

    /// A 409 for a request whose status does not allow the action.
    pub fn invalid_status(status: Status, needs: &'static str) -> Self {
        Error::InvalidStatus { status, needs }
    }
}

impl From<crate::db::StoreError> for Error {
    fn from(e: crate::db::StoreError) -> Self {
        match e {
            crate::db::StoreError::Busy => Error::Busy,
            crate::db::StoreError::Unavailable => Error::Unavailable,
            e => Error::Database(e),
        }
    }
}

//! How each [`Error`] answers over HTTP: its status, and the `{"error", "message"}` body.
//!
//! Client mistakes are explicit variants with their own status and code. Store and
//! unexpected errors are logged and answer a generic 500 that says nothing of the cause,
//! except a busy store, which answers 503 with `Retry-After` because it passes.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::error::{Error, ErrorBody};

impl Error {
    /// The HTTP status this error answers with.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Error::InvalidRequest(_)
            | Error::LifetimeNotAllowed(_)
            | Error::InvalidScope(_)
            | Error::InvalidRequestId
            | Error::UnknownAccount(_)
            | Error::InvalidCallback(_)
            | Error::InvalidCode(_)
            | Error::AccountNotAllowed(_) => StatusCode::BAD_REQUEST,
            Error::ClientKeyRequired => StatusCode::UNAUTHORIZED,
            Error::AccountPaused(_) | Error::ClientExists(_) => StatusCode::CONFLICT,
            Error::ClientNotFound => StatusCode::NOT_FOUND,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::RequestNotFound | Error::RouteNotFound => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::InvalidStatus { .. }
            | Error::NotRefreshable
            | Error::RefreshRejected(_)
            | Error::AccountMismatch { .. } => StatusCode::CONFLICT,
            Error::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::ControlBrowserFailed(_)
            | Error::ExchangeFailed(_)
            | Error::UpstreamFailed(_) => StatusCode::BAD_GATEWAY,
            Error::Busy
            | Error::Unavailable
            | Error::Timeout
            | Error::Overloaded
            | Error::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::SlowDown { .. } | Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Database(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status_code();
        match &self {
            Error::Database(e) => tracing::error!(error = %e, "database error"),
            Error::Internal(e) => tracing::error!(error = format!("{e:#}"), "internal error"),
            Error::Busy => tracing::warn!("database busy; answered 503"),
            Error::Unavailable => tracing::warn!("database unreachable; answered 503"),
            Error::Timeout => tracing::warn!("request timed out; answered 503"),
            Error::Overloaded => tracing::warn!("too many requests in flight; answered 503"),
            _ => {}
        }
        let retry_after = match &self {
            Error::SlowDown { retry_after } | Error::RateLimited { retry_after, .. } => {
                Some(retry_after.as_secs_f64().ceil().max(1.0) as u64)
            }
            _ if status == StatusCode::SERVICE_UNAVAILABLE => Some(1),
            _ => None,
        };
        let body = Json(ErrorBody {
            error: self.code(),
            message: self.to_string(),
        });
        let mut response = (status, body).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

//! The status poll's answer, and the `token` object it shares with the refresh answer.

use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use secrecy::ExposeSecret;

use crate::config::Config;
use crate::domain::{Status, TokenBundle};

/// A request as its poller sees it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StatusBody {
    pub request_id: Uuid,
    pub status: Status,
    pub client_id: Option<Uuid>,
    /// Whether an enrolled client's key made the request.
    pub verified: bool,
    pub account_id: Option<u32>,
    pub token: Option<TokenView>,
    pub error: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub poll_interval_secs: u64,
    /// When the approved tokens' refresh token dies for good (null when unknown, or before
    /// approval): after it, only a new login gives tokens.
    pub refresh_expires_at: Option<DateTime<Utc>>,
}

impl IntoResponse for StatusBody {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}

/// The `token` object of the status and refresh answers: the only way a token leaves the
/// router. The refresh token is in it only with `requests.share_refresh_token`: the router
/// alone refreshes, because a client refreshing with its own copy would rotate the router's
/// copy dead.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenView {
    access_token: String,
    refresh_token: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    token_type: String,
    scope: String,
    /// When the refresh token dies for good; null when unknown.
    refresh_expires_at: Option<DateTime<Utc>>,
}

impl TokenView {
    pub fn new(b: TokenBundle, config: &Config) -> Self {
        let share = config.requests.share_refresh_token;
        TokenView {
            access_token: b.access_token.expose_secret().to_owned(),
            refresh_token: b
                .refresh_token
                .filter(|_| share)
                .map(|t| t.expose_secret().to_owned()),
            expires_at: b.expires_at,
            refresh_expires_at: b.refresh_expires_at,
            token_type: b.token_type,
            scope: b.scope,
        }
    }
}

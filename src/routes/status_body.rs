//! The status poll's answer.

use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::token_requests::TokenView;
use crate::domain::Status;

#[derive(Serialize)]
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
}

impl IntoResponse for StatusBody {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}

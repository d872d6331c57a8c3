//! `/v1/webhooks`: what the outbox holds, and a test event to check a receiver.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{json, Value};

use super::extract::Admin;
use super::AppState;
use crate::db;
use crate::domain::time;
use crate::error::{Error, Result};
use crate::notify::EventType;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesParams {
    limit: Option<u32>,
}

/// `GET /v1/webhooks/deliveries?limit=`: recent deliveries, newest first, with status and
/// attempts (never a body or a URL).
pub async fn deliveries(
    State(app): State<AppState>,
    _: Admin,
    params: std::result::Result<Query<DeliveriesParams>, QueryRejection>,
) -> Result<axum::Json<Value>> {
    let Query(params) = params.map_err(|e| Error::InvalidRequest(e.body_text()))?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::InvalidRequest(format!(
            "limit must be 1 to {MAX_LIMIT}"
        )));
    }
    let deliveries = db::deliveries::recent(&app.db, limit).await?;
    Ok(axum::Json(json!({ "deliveries": deliveries })))
}

/// `POST /v1/webhooks/test`: queues a `test` event to every webhook.
pub async fn test(State(app): State<AppState>, _: Admin) -> Result<axum::Json<Value>> {
    let webhooks = app.effects.outbox().hooks.len();
    db::deliveries::queue_event(&app.db, EventType::Test, time::now()).await?;
    Ok(axum::Json(json!({ "queued": webhooks })))
}

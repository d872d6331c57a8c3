//! `/v1/webhooks`: what the outbox holds, and a test event to check a receiver.

use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::extract::{page_limit, Admin, Query};
use super::AppState;
use crate::db;
use crate::domain::time;
use crate::error::{ErrorBody, Result};
use crate::notify::EventType;

const DEFAULT_LIMIT: u32 = 50;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesParams {
    limit: Option<u32>,
}

/// `GET /v1/webhooks/deliveries?limit=`: recent deliveries, newest first, with status and
/// attempts (never a body or a URL).
#[utoipa::path(
    get,
    path = "/v1/webhooks/deliveries",
    operation_id = "listWebhookDeliveries",
    tag = "webhooks",
    summary = "The webhook outbox, newest first",
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "At most this many (default 50)")),
    security(("admin_token" = []), ("console_session" = [])),
    responses(
        (status = 200, description = "The deliveries", body = Deliveries),
        (status = 400, description = "`invalid_request`: a bad limit", body = ErrorBody),
    )
)]
pub async fn deliveries(
    State(app): State<AppState>,
    _: Admin,
    Query(params): Query<DeliveriesParams>,
) -> Result<axum::Json<Deliveries>> {
    let limit = page_limit(params.limit, DEFAULT_LIMIT)?;
    let deliveries = db::deliveries::recent(&app.db, limit).await?;
    Ok(axum::Json(Deliveries { deliveries }))
}

/// Outbox rows, newest first: never a body or a URL.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Deliveries {
    deliveries: Vec<db::deliveries::Delivery>,
}

/// How many webhooks the test event was queued for.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Queued {
    queued: usize,
}

/// `POST /v1/webhooks/test`: queues a `test` event to every webhook.
#[utoipa::path(
    post,
    path = "/v1/webhooks/test",
    operation_id = "testWebhooks",
    tag = "webhooks",
    summary = "Queue a `test` event to every webhook",
    security(("admin_token" = []), ("console_session" = [])),
    responses((status = 200, description = "Queued", body = Queued))
)]
pub async fn test(State(app): State<AppState>, _: Admin) -> Result<axum::Json<Queued>> {
    let webhooks = app.effects.outbox().hooks.len();
    db::deliveries::queue_event(&app.db, EventType::Test, time::now()).await?;
    Ok(axum::Json(Queued { queued: webhooks }))
}

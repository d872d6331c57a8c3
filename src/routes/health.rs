//! Liveness.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::AppState;
use crate::error::Result;

/// 200 when the database answers a query.
pub async fn healthz(State(app): State<AppState>) -> Result<Json<Value>> {
    app.db.ping().await?;
    Ok(Json(json!({ "status": "ok" })))
}

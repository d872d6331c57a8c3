//! Liveness, readiness and metrics.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::AppState;
use crate::db;
use crate::error::{Error, Result};

/// 200 when the database answers a query.
pub async fn healthz(State(app): State<AppState>) -> Result<Json<Value>> {
    app.db.ping().await?;
    Ok(Json(json!({ "status": "ok" })))
}

/// 200 when the database accepts a write (it can take SQLite's write lock) and the reaper
/// has completed a pass within three intervals: a router whose reaper stopped still
/// answers, but nothing expires, so it is not ready.
pub async fn readyz(State(app): State<AppState>) -> Result<Json<Value>> {
    if let Some(since) = app.reaper_health.stalled(std::time::Instant::now()) {
        return Err(Error::NotReady(format!(
            "the reaper has not completed a pass in {} s; see the log",
            since.as_secs()
        )));
    }
    app.db.ready().await?;
    Ok(Json(json!({ "status": "ready" })))
}

/// Prometheus metrics in the OpenMetrics text format. Counts only, never a secret.
pub async fn metrics(State(app): State<AppState>) -> Result<Response> {
    let by_status = db::requests::count_by_status(&app.db).await?;
    let body = app.metrics.render(&by_status, app.effects.waiters().len());
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

//! Liveness, readiness and metrics.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::AppState;
use crate::db;
use crate::error::{Error, ErrorBody, Result};

/// `{"status": "ok"}` or `{"status": "ready"}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    status: &'static str,
}

/// 200 when the database answers a query.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    summary = "Liveness: the database answers",
    responses((status = 200, description = "`{\"status\": \"ok\"}`", body = Health))
)]
pub async fn healthz(State(app): State<AppState>) -> Result<Json<Health>> {
    app.db.ping().await?;
    Ok(Json(Health { status: "ok" }))
}

/// 200 when the database accepts a write (SQLite: it can take the write lock; PostgreSQL:
/// the server answers) and the reaper has completed a pass within three intervals: a router
/// whose reaper stopped still answers, but nothing expires, so it is not ready. On
/// PostgreSQL it must also hear the other routers' commits.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    summary = "Readiness: the database takes a write and the reaper is passing",
    responses(
        (status = 200, description = "`{\"status\": \"ready\"}`", body = Health),
        (status = 503, description = "`busy`, `unavailable` (PostgreSQL) or `not_ready`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn readyz(State(app): State<AppState>) -> Result<Json<Health>> {
    if let Some(since) = app.reaper_health.stalled(std::time::Instant::now()) {
        return Err(Error::NotReady(format!(
            "the reaper has not completed a pass in {} s; see the log",
            since.as_secs()
        )));
    }
    app.db.ready().await?;
    if app.effects.deaf(&app.db) {
        return Err(Error::NotReady(
            "not listening for the other routers' changes yet; see the log".into(),
        ));
    }
    Ok(Json(Health { status: "ready" }))
}

/// Prometheus metrics in the OpenMetrics text format. Counts only, never a secret.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    summary = "Prometheus metrics (OpenMetrics text)",
    responses((status = 200, description = "The metrics",
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String))
)]
pub async fn metrics(State(app): State<AppState>) -> Result<Response> {
    let by_status = db::requests::count_by_status(&app.db).await?;
    let body = app.metrics.render(&by_status, app.effects.waiters().len());
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

//! The HTTP API, one file per resource, and the state every handler shares.

pub(crate) mod accounts;
mod admin_actions;
mod answer;
mod callback;
mod clients;
mod console;
mod edge;
mod extract;
mod health;
mod refresh;
pub(crate) mod select_account;
mod status_body;
mod token_requests;
mod webhooks;

use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::BoxError;
use axum::Router;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::ServiceBuilder;

use crate::error::Error;
pub use crate::service::{AppState, Shared};

pub use crate::config::paths::is_reserved_path;

/// The most a request body may hold.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The API, the console, the callback and the operational endpoints.
pub fn router(state: AppState) -> Router {
    let callback_path = state.config.callback_path();
    let routes = Router::new()
        .route(
            "/v1/token-requests",
            post(token_requests::create).get(token_requests::list),
        )
        .route(
            "/v1/token-requests/{id}/select-account",
            post(select_account::select_account),
        )
        .route("/v1/token-requests/{id}/deny", post(token_requests::deny))
        .route(
            "/v1/token-requests/{id}/cancel",
            post(token_requests::cancel),
        )
        .route("/v1/token-requests/{id}/refresh", post(refresh::refresh))
        .route(
            "/v1/token-requests/{id}/revoke",
            post(admin_actions::revoke),
        )
        .route(
            "/v1/token-requests/{id}/code",
            post(admin_actions::submit_code),
        )
        .route("/v1/codes", post(admin_actions::submit_code_by_state))
        .route("/v1/clients", post(clients::add).get(clients::list))
        .route(
            "/v1/clients/{id}",
            axum::routing::patch(clients::update).delete(clients::remove),
        )
        .route("/v1/clients/{id}/rotate-key", post(clients::rotate_key))
        .route("/v1/clients/{id}/disable", post(clients::disable))
        .route("/v1/clients/{id}/enable", post(clients::enable))
        .route("/v1/accounts", get(accounts::list))
        .route("/v1/accounts/{id}/pause", post(accounts::pause))
        .route("/v1/accounts/{id}/resume", post(accounts::resume))
        .route("/v1/audit", get(admin_actions::audit))
        .route("/v1/webhooks/deliveries", get(webhooks::deliveries))
        .route("/v1/webhooks/test", post(webhooks::test))
        .route("/admin", get(console::index))
        .route("/admin/app.js", get(console::script))
        .route("/admin/app.css", get(console::style))
        .route(
            "/admin/session",
            get(console::session)
                .post(console::sign_in)
                .delete(console::sign_out),
        )
        .route("/admin/overview", get(console::overview))
        .route(&callback_path, get(callback::callback))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics));
    // The status poll is outside the concurrency cap: a long poll waits by design, and
    // waiters have their own bound (`limits.max_waiters`).
    let waits = Router::new().route(
        "/v1/token-requests/{id}/status",
        get(token_requests::status),
    );
    layered(routes, waits, state)
}

/// The callback listener's router (`oauth.callback_bind_addr`): the callback path alone,
/// 404 for everything else, so a port opened for the provider's localhost redirect exposes
/// nothing of the API.
pub fn callback_router(state: AppState) -> Router {
    let routes = Router::new().route(&state.config.callback_path(), get(callback::callback));
    layered(routes, Router::new(), state)
}

/// The same answers for what matches no route, and the same layers, on every listener.
/// `capped` routes count against `limits.max_concurrent_requests`; `uncapped` ones do not.
fn layered(capped: Router<AppState>, uncapped: Router<AppState>, state: AppState) -> Router {
    let limits = state.config.limits.clone();
    // Refuse at once beyond the concurrency cap (rather than queue), as the API's own 503.
    // The cap is the global kind: `Router::layer` clones layers onto every route, and a
    // plain concurrency limit would give each route a semaphore of its own.
    let capped = capped.layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(overloaded))
            .load_shed()
            .layer(GlobalConcurrencyLimitLayer::new(
                limits.max_concurrent_requests,
            )),
    );
    capped
        .merge(uncapped)
        .fallback(|| async { Error::RouteNotFound })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .layer(
            // One boxed layer around every route: each `Router::layer` call boxes again.
            ServiceBuilder::new()
                .layer(edge::EdgeLayer {
                    metrics: state.metrics.clone(),
                    timeout: Duration::from_secs(limits.request_timeout_secs),
                })
                .layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .with_state(state)
}

/// The concurrency cap's refusal, as the API's own 503. (The request timeout is the edge
/// layer's, which answers on its own.)
async fn overloaded(err: BoxError) -> Error {
    if err.is::<tower::load_shed::error::Overloaded>() {
        Error::Overloaded
    } else {
        Error::Internal(anyhow::anyhow!("middleware error: {err}"))
    }
}

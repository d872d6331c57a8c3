//! The HTTP API, one file per resource, and the state every handler shares.

pub(crate) mod accounts;
mod admin_actions;
mod admin_events;
mod answer;
mod callback;
mod clients;
mod console;
mod edge;
mod extract;
mod health;
pub mod openapi;
mod refresh;
pub(crate) mod select_account;
mod status_body;
mod token_requests;
mod webhooks;

use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::BoxError;
use axum::Router;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::ServiceBuilder;

use crate::error::Error;
pub use crate::service::{AppState, Shared};

pub use crate::config::paths::is_reserved_path;

/// The most a request body may hold.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The API, the console, the callback and the operational endpoints: every documented
/// route from [`openapi::api`], and the callback at the path of `oauth.redirect_uri`.
pub fn router(state: AppState) -> Router {
    let callback_path = state.config.callback_path();
    let (documented, waits) = openapi::api();
    let routes = documented
        .split_for_parts()
        .0
        .route(&callback_path, get(callback::callback));
    layered(routes, waits.split_for_parts().0, state)
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

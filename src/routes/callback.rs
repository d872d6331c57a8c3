//! The OAuth redirect target (served at the path of `oauth.redirect_uri`).
//!
//! The state is consumed *before* the code is exchanged, in one conditional write, so a
//! replayed or concurrent callback finds nothing to claim; see [`super::login`].

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Html;
use serde::Deserialize;

use super::AppState;
use crate::db;
use crate::domain::{secret, time, Actor, Audit, Status, Transition};
use crate::error::{Error, ErrorBody, Result};
use crate::service::flow::login::{complete, sanitize};

#[derive(Deserialize)]
pub struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Documented at the default path; it is served at the path of `oauth.redirect_uri`.
#[utoipa::path(
    get,
    path = "/oauth/callback",
    operation_id = "callback",
    tag = "login",
    summary = "The provider's redirect after a login (at the path of `oauth.redirect_uri`)",
    params(
        ("code" = Option<String>, Query, description = "The authorization code"),
        ("state" = Option<String>, Query, description = "The login's state"),
        ("error" = Option<String>, Query, description = "The provider's error, such as `access_denied`"),
        ("error_description" = Option<String>, Query, description = "The provider's words for it"),
    ),
    responses(
        (status = 200, description = "A small page saying how the login ended", content_type = "text/html", body = String),
        (status = 400, description = "`invalid_callback`: a missing, unknown, used or expired state", body = ErrorBody),
        (status = 409, description = "`invalid_status` or `account_mismatch`", body = ErrorBody),
        (status = 502, description = "`exchange_failed`", body = ErrorBody),
    )
)]
pub async fn callback(
    State(app): State<AppState>,
    params: std::result::Result<Query<CallbackParams>, QueryRejection>,
) -> Result<Html<String>> {
    let Query(params) = params.map_err(|_| Error::InvalidCallback("the query is malformed"))?;
    let state = non_empty(params.state).ok_or(Error::InvalidCallback("state is missing"))?;
    let state_hash = secret::hash(&state);
    let now = time::now();

    if let Some(error) = non_empty(params.error) {
        let text = match non_empty(params.error_description) {
            Some(description) => sanitize(&format!("{error}: {description}")),
            None => sanitize(&error),
        };
        let (transition, action) = match error.as_str() {
            "access_denied" => (Transition::Deny, "deny"),
            _ => (Transition::Fail, "fail"),
        };
        let audit = Audit::new(Actor::Provider, action).with_detail(text.clone());
        let id =
            db::requests::finish_by_state(&app.db, &state_hash, transition, &text, now, &audit)
                .await?
                .ok_or(Error::InvalidCallback(
                    "the state is unknown, used or expired",
                ))?;
        let status = transition.to().unwrap_or(Status::Error);
        tracing::info!(request_id = %id, %status, "provider answered with an error");
        return Ok(page(&format!(
            "The login ended: the request is now {status}."
        )));
    }

    let code = non_empty(params.code).ok_or(Error::InvalidCallback("code is missing"))?;
    let claim = db::requests::claim_state(&app.db, &state_hash, now)
        .await?
        .ok_or(Error::InvalidCallback(
            "the state is unknown, used or expired",
        ))?;
    complete(&app, claim, &code, Some(&state), Actor::Provider).await?;
    Ok(page("Login complete. You may close this window."))
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// A page with no style, script or outside resource, so the strict default policy holds.
fn page(message: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>claude-auth-router</title></head>\
         <body><h1>claude-auth-router</h1><p>{message}</p></body></html>"
    ))
}

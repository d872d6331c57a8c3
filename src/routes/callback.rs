//! The OAuth redirect target (served at the path of `oauth.redirect_uri`).
//!
//! The state is consumed *before* the code is exchanged, in one conditional write, so a
//! replayed or concurrent callback finds nothing to claim and can never cause a second
//! exchange. The approval is a second conditional write that also checks the row's version,
//! so an exchange that finishes after a deny, a cancel, a re-select or the deadline changes
//! nothing.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Html;
use serde::Deserialize;

use super::AppState;
use crate::db;
use crate::domain::{secret, time, Status, Transition};
use crate::error::{Error, Result};

/// How much of a provider's error text is kept: it is untrusted and goes into the database.
const MAX_PROVIDER_ERROR: usize = 512;

#[derive(Deserialize)]
pub struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

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
        let transition = if error == "access_denied" {
            Transition::Deny
        } else {
            Transition::Fail
        };
        let id = db::requests::finish_by_state(&app.db, &state_hash, transition, &text, now)
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
    let id = claim.id;
    match app
        .oauth
        .exchange_code(&code, &claim.pkce_verifier, &claim.scopes)
        .await
    {
        Ok(bundle) => {
            if !db::requests::approve(&app.db, id, claim.version, &bundle, time::now()).await? {
                tracing::warn!(request_id = %id, "request moved on during the exchange; tokens dropped");
                let status = current_status(&app, id).await?;
                return Err(Error::invalid_status(status, "in_progress and unexpired"));
            }
            tracing::info!(request_id = %id, "token request approved");
            Ok(page("Login complete. You may close this window."))
        }
        Err(e) => {
            let text = sanitize(&e.to_string());
            tracing::warn!(request_id = %id, error = %text, "token exchange failed");
            db::requests::fail_claimed(&app.db, id, claim.version, &text, time::now()).await?;
            Err(Error::ExchangeFailed(text))
        }
    }
}

async fn current_status(app: &AppState, id: uuid::Uuid) -> Result<Status> {
    let stored = db::requests::find(&app.db, id)
        .await?
        .ok_or(Error::RequestNotFound)?;
    Ok(stored.request.effective_status(time::now()))
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// Keeps provider text printable and bounded.
fn sanitize(s: &str) -> String {
    s.trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_PROVIDER_ERROR)
        .collect()
}

fn page(message: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>claude-auth-router</title></head>\
         <body style=\"font-family:sans-serif;margin:3em\"><h1>claude-auth-router</h1><p>{message}</p></body></html>"
    ))
}

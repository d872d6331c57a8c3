//! Admin actions beyond the core flow: revoke, a pasted authorization code, and the audit
//! trail.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::extract::{Admin, CodeSubmitter, Json, RequestId};
use super::AppState;
use crate::db;
use crate::domain::{secret, time, Actor, Audit, Status};
use crate::error::{Error, Result};
use crate::service::flow::finish;
use crate::service::flow::login::{complete, current_status};

/// Audit listings return this many rows unless told otherwise.
const DEFAULT_AUDIT_LIMIT: u32 = 100;
const MAX_AUDIT_LIMIT: u32 = 1000;

/// `POST /v1/token-requests/{id}/revoke` (see [`finish::revoke`]).
pub async fn revoke(
    State(app): State<AppState>,
    _: Admin,
    RequestId(id): RequestId,
) -> Result<axum::Json<Value>> {
    let provider_revoked = finish::revoke(&app, id, Audit::new(Actor::Admin, "revoke")).await?;
    Ok(axum::Json(json!({
        "request_id": id,
        "status": Status::Revoked,
        "provider_revoked": provider_revoked,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    code: String,
}

/// `POST /v1/token-requests/{id}/code`: for providers that show the code to the person
/// instead of redirecting, as `code#state`. The state part must be the request's current
/// one: without it, a code from any login (a planted one included) would be taken for this
/// request's. `oauth.allow_code_without_state` accepts a bare code, for providers that show
/// no state. The same single-use rules as the callback apply. An admin or the control
/// browser's submit token may call it.
pub async fn submit_code(
    State(app): State<AppState>,
    CodeSubmitter(actor): CodeSubmitter,
    RequestId(id): RequestId,
    Json(body): Json<CodeBody>,
) -> Result<axum::Json<Value>> {
    let (code, state) = pasted(&body.code)?;
    if state.is_none() && !app.config.oauth.allow_code_without_state {
        return Err(Error::InvalidCode(
            "paste the code with its state, as the provider shows it: code#state",
        ));
    }
    let status = current_status(&app, id).await?;
    if status != Status::InProgress {
        return Err(Error::invalid_status(status, "in_progress"));
    }
    let state_hash = state.map(secret::hash);
    let claim = db::requests::claim_for_code(&app.db, id, state_hash.as_deref(), time::now())
        .await?
        .ok_or(Error::InvalidCode(
            "the code's state is not the current login's, or this login was already used",
        ))?;
    let status = complete(&app, claim, code, state, actor).await?;
    Ok(axum::Json(json!({ "request_id": id, "status": status })))
}

/// `POST /v1/codes` with `{"code": "<code>#<state>"}`: the same as the per-request endpoint,
/// for a control browser that holds the provider page's text but not the request id. The
/// state is the key, so it is required; an unknown or used one is 400 `invalid_code`.
pub async fn submit_code_by_state(
    State(app): State<AppState>,
    CodeSubmitter(actor): CodeSubmitter,
    Json(body): Json<CodeBody>,
) -> Result<axum::Json<Value>> {
    let (code, state) = pasted(&body.code)?;
    let state = state.ok_or(Error::InvalidCode(
        "send the code with its state, as the provider shows it: code#state",
    ))?;
    let claim = db::requests::claim_state(&app.db, &secret::hash(state), time::now())
        .await?
        .ok_or(Error::InvalidCode(
            "no login is waiting for this state: it is unknown, used or expired",
        ))?;
    let id = claim.id;
    let status = complete(&app, claim, code, Some(state), actor).await?;
    Ok(axum::Json(json!({ "request_id": id, "status": status })))
}

/// Splits pasted text into the code and, when present, the state after `#`.
fn pasted(text: &str) -> Result<(&str, Option<&str>)> {
    let text = text.trim();
    let (code, state) = match text.split_once('#') {
        Some((code, state)) => (code.trim(), Some(state.trim()).filter(|s| !s.is_empty())),
        None => (text, None),
    };
    if code.is_empty() || code.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::InvalidRequest(
            "code must be the provider's code, followed by #state".into(),
        ));
    }
    Ok((code, state))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    request_id: Option<String>,
    limit: Option<u32>,
}

/// `GET /v1/audit?request_id=&limit=`: one request's trail oldest first, or everyone's
/// newest first.
pub async fn audit(
    State(app): State<AppState>,
    _: Admin,
    params: std::result::Result<Query<AuditParams>, QueryRejection>,
) -> Result<axum::Json<Value>> {
    let Query(params) = params.map_err(|e| Error::InvalidRequest(e.body_text()))?;
    let request_id = params
        .request_id
        .map(|r| Uuid::parse_str(&r).map_err(|_| Error::InvalidRequestId))
        .transpose()?;
    let limit = params.limit.unwrap_or(DEFAULT_AUDIT_LIMIT);
    if !(1..=MAX_AUDIT_LIMIT).contains(&limit) {
        return Err(Error::InvalidRequest(format!(
            "limit must be 1 to {MAX_AUDIT_LIMIT}"
        )));
    }
    let events = db::audit::list(&app.db, request_id, limit).await?;
    Ok(axum::Json(json!({ "events": events })))
}

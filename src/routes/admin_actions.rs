//! Admin actions beyond the core flow: revoke, a pasted authorization code, and the audit
//! trail.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{page_limit, Admin, CodeSubmitter, Json, Query, RequestId};
use super::token_requests::Moved;
use super::AppState;
use crate::db;
use crate::domain::{secret, time, Actor, Audit, Status};
use crate::error::{Error, ErrorBody, Result};
use crate::service::flow::finish;
use crate::service::flow::login::{complete, current_status};

/// Audit listings return this many rows unless told otherwise.
const DEFAULT_AUDIT_LIMIT: u32 = 100;

/// A revoked request.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Revoked {
    request_id: Uuid,
    /// Always `revoked`.
    status: Status,
    /// Whether the provider withdrew the tokens too; null without `oauth.revocation_url`.
    provider_revoked: Option<bool>,
}

/// `POST /v1/token-requests/{id}/revoke` (see [`finish::revoke`]).
#[utoipa::path(
    post,
    path = "/v1/token-requests/{id}/revoke",
    operation_id = "revokeTokenRequest",
    tag = "token requests",
    summary = "Withdraw an approved request's tokens",
    params(("id" = Uuid, Path, description = "The request id")),
    security(("admin_token" = []), ("console_session" = [])),
    responses(
        (status = 200, description = "Revoked; its tokens are deleted", body = Revoked),
        (status = 409, description = "`invalid_status`: not approved", body = ErrorBody),
    )
)]
pub async fn revoke(
    State(app): State<AppState>,
    _: Admin,
    RequestId(id): RequestId,
) -> Result<axum::Json<Revoked>> {
    let provider_revoked = finish::revoke(&app, id, Audit::new(Actor::Admin, "revoke")).await?;
    Ok(axum::Json(Revoked {
        request_id: id,
        status: Status::Revoked,
        provider_revoked,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    /// The text the provider's page showed: `code#state`.
    code: String,
}

/// `POST /v1/token-requests/{id}/code`: for providers that show the code to the person
/// instead of redirecting, as `code#state`. The state part must be the request's current
/// one: without it, a code from any login (a planted one included) would be taken for this
/// request's. `oauth.allow_code_without_state` accepts a bare code, for providers that show
/// no state. The same single-use rules as the callback apply. An admin or the control
/// browser's submit token may call it.
#[utoipa::path(
    post,
    path = "/v1/token-requests/{id}/code",
    operation_id = "submitCode",
    tag = "codes",
    summary = "Finish a login with the code the provider showed",
    params(("id" = Uuid, Path, description = "The request id")),
    request_body = CodeBody,
    security(("admin_token" = []), ("console_session" = []), ("submit_token" = [])),
    responses(
        (status = 200, description = "The request after the exchange", body = Moved),
        (status = 400, description = "`invalid_code`, `invalid_request` or `invalid_request_id`", body = ErrorBody),
        (status = 409, description = "`invalid_status` (not in_progress) or `account_mismatch`", body = ErrorBody),
        (status = 502, description = "`exchange_failed`", body = ErrorBody),
    )
)]
pub async fn submit_code(
    State(app): State<AppState>,
    CodeSubmitter(actor): CodeSubmitter,
    RequestId(id): RequestId,
    Json(body): Json<CodeBody>,
) -> Result<axum::Json<Moved>> {
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
    Ok(axum::Json(Moved {
        request_id: id,
        status,
    }))
}

/// `POST /v1/codes` with `{"code": "<code>#<state>"}`: the same as the per-request endpoint,
/// for a control browser that holds the provider page's text but not the request id. The
/// state is the key, so it is required; an unknown or used one is 400 `invalid_code`.
#[utoipa::path(
    post,
    path = "/v1/codes",
    operation_id = "submitCodeByState",
    tag = "codes",
    summary = "Finish whichever login the code's state belongs to",
    request_body = CodeBody,
    security(("admin_token" = []), ("console_session" = []), ("submit_token" = [])),
    responses(
        (status = 200, description = "The request after the exchange", body = Moved),
        (status = 400, description = "`invalid_code` (no state, or one no login waits for) or `invalid_request`", body = ErrorBody),
        (status = 409, description = "`invalid_status` or `account_mismatch`", body = ErrorBody),
        (status = 502, description = "`exchange_failed`", body = ErrorBody),
    )
)]
pub async fn submit_code_by_state(
    State(app): State<AppState>,
    CodeSubmitter(actor): CodeSubmitter,
    Json(body): Json<CodeBody>,
) -> Result<axum::Json<Moved>> {
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
    Ok(axum::Json(Moved {
        request_id: id,
        status,
    }))
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

/// Audit rows.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditEvents {
    events: Vec<db::audit::AuditEvent>,
}

/// `GET /v1/audit?request_id=&limit=`: one request's trail oldest first, or everyone's
/// newest first.
#[utoipa::path(
    get,
    path = "/v1/audit",
    operation_id = "listAudit",
    tag = "audit",
    summary = "The audit trail: one request's, oldest first, or everyone's, newest first",
    params(
        ("request_id" = Option<Uuid>, Query, description = "Only this request's rows, oldest first"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "At most this many (default 100)"),
    ),
    security(("admin_token" = []), ("console_session" = [])),
    responses(
        (status = 200, description = "The rows", body = AuditEvents),
        (status = 400, description = "`invalid_request` or `invalid_request_id`", body = ErrorBody),
    )
)]
pub async fn audit(
    State(app): State<AppState>,
    _: Admin,
    Query(params): Query<AuditParams>,
) -> Result<axum::Json<AuditEvents>> {
    let request_id = params
        .request_id
        .map(|r| Uuid::parse_str(&r).map_err(|_| Error::InvalidRequestId))
        .transpose()?;
    let limit = page_limit(params.limit, DEFAULT_AUDIT_LIMIT)?;
    let events = db::audit::list(&app.db, request_id, limit).await?;
    Ok(axum::Json(AuditEvents { events }))
}

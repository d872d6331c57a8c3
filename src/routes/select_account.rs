//! `POST /v1/token-requests/{id}/select-account`: the operator's choice of account (see
//! [`login::open`]).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{Admin, Json, RequestId};
use super::AppState;
use crate::domain::{Actor, Status};
use crate::error::{ErrorBody, Result};
use crate::service::flow::login;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectBody {
    account_id: u32,
}

/// The login under way.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Selected {
    request_id: Uuid,
    /// Always `in_progress`.
    status: Status,
    account_id: u32,
}

#[utoipa::path(
    post,
    path = "/v1/token-requests/{id}/select-account",
    operation_id = "selectAccount",
    tag = "token requests",
    summary = "Approve with an account: the control browser opens its login",
    params(("id" = Uuid, Path, description = "The request id")),
    request_body = SelectBody,
    security(("admin_token" = []), ("console_session" = [])),
    responses(
        (status = 200, description = "The login is open in the control browser", body = Selected),
        (status = 400, description = "`unknown_account`, `account_not_allowed`, `invalid_request_id` or `invalid_request`", body = ErrorBody),
        (status = 409, description = "`account_paused`, or `invalid_status` (not open)", body = ErrorBody),
        (status = 502, description = "`control_browser_failed`: the request was put back as it was", body = ErrorBody),
    )
)]
pub async fn select_account(
    State(app): State<AppState>,
    _: Admin,
    RequestId(id): RequestId,
    Json(body): Json<SelectBody>,
) -> Result<axum::Json<Selected>> {
    login::open(&app, id, body.account_id, Actor::Admin).await?;
    Ok(axum::Json(Selected {
        request_id: id,
        status: Status::InProgress,
        account_id: body.account_id,
    }))
}

//! `POST /v1/token-requests/{id}/select-account`: the operator's choice of account (see
//! [`login::open`]).

use axum::extract::State;
use serde::Deserialize;
use serde_json::{json, Value};

use super::extract::{Admin, Json, RequestId};
use super::AppState;
use crate::domain::{Actor, Status};
use crate::error::Result;
use crate::service::flow::login;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectBody {
    account_id: u32,
}

pub async fn select_account(
    State(app): State<AppState>,
    _: Admin,
    RequestId(id): RequestId,
    Json(body): Json<SelectBody>,
) -> Result<axum::Json<Value>> {
    login::open(&app, id, body.account_id, Actor::Admin).await?;
    Ok(axum::Json(json!({
        "request_id": id,
        "status": Status::InProgress,
        "account_id": body.account_id,
    })))
}

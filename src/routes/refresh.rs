//! `POST /v1/token-requests/{id}/refresh` (see [`flow::refresh`]): the request's poll token
//! as a bearer; the new tokens as a status poll shows them.

use axum::extract::State;

use super::extract::{Bearer, RequestId};
use super::status_body::TokenView;
use super::AppState;
use crate::error::{Error, Result};
use crate::service::flow;

pub async fn refresh(
    State(app): State<AppState>,
    RequestId(id): RequestId,
    bearer: Bearer,
) -> Result<axum::Json<TokenView>> {
    let poll_token = bearer.0.ok_or(Error::Unauthorized)?;
    let bundle = flow::refresh::refresh(&app, id, &poll_token).await?;
    Ok(axum::Json(TokenView::new(bundle, &app.config)))
}

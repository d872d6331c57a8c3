//! `POST /v1/token-requests/{id}/refresh` (see [`flow::refresh`]): the request's poll token
//! as a bearer; the new tokens as a status poll shows them.

use axum::extract::State;

use super::extract::{Bearer, RequestId};
use super::status_body::TokenView;
use super::AppState;
use crate::error::{Error, ErrorBody, Result};
use crate::service::flow;

#[utoipa::path(
    post,
    path = "/v1/token-requests/{id}/refresh",
    operation_id = "refreshTokens",
    tag = "token requests",
    summary = "New tokens through the provider's refresh grant",
    params(("id" = uuid::Uuid, Path, description = "The request id")),
    security(("poll_token" = [])),
    responses(
        (status = 200, description = "The tokens as they stand after the refresh", body = TokenView),
        (status = 409, description = "`invalid_status` (not approved), `refresh_rejected` or `not_refreshable`", body = ErrorBody),
        (status = 502, description = "`upstream_failed`: the provider could not be reached; nothing changed", body = ErrorBody),
    )
)]
pub async fn refresh(
    State(app): State<AppState>,
    RequestId(id): RequestId,
    bearer: Bearer,
) -> Result<axum::Json<TokenView>> {
    let poll_token = bearer.0.ok_or(Error::Unauthorized)?;
    let bundle = flow::refresh::refresh(&app, id, &poll_token).await?;
    Ok(axum::Json(TokenView::new(bundle, &app.config)))
}

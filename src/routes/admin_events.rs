//! `GET /v1/admin-events`: who changed which client or account, and when.

use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::extract::{page_limit, Admin, Query};
use super::AppState;
use crate::db;
use crate::db::admin_events::AdminEvent;
use crate::error::{Error, ErrorBody, Result};

/// The same paging as `/v1/audit`.
const DEFAULT_LIMIT: u32 = 100;
/// The longest subject a filter may name (`client:` and a UUID is 43).
const MAX_SUBJECT: usize = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    subject: Option<String>,
    limit: Option<u32>,
}

/// Changes to clients and accounts, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AdminEvents {
    events: Vec<AdminEvent>,
}

#[utoipa::path(
    get,
    path = "/v1/admin-events",
    operation_id = "listAdminEvents",
    tag = "audit",
    summary = "Changes to clients and accounts, newest first",
    params(
        ("subject" = Option<String>, Query, max_length = 64,
            description = "Only this subject's changes: `client:<id>` or `account:<id>`"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "At most this many (default 100)"),
    ),
    security(("admin_token" = []), ("console_session" = [])),
    responses(
        (status = 200, description = "The changes", body = AdminEvents),
        (status = 400, description = "`invalid_request`: a bad limit or subject", body = ErrorBody),
    )
)]
pub async fn list(
    State(app): State<AppState>,
    _: Admin,
    Query(params): Query<Params>,
) -> Result<axum::Json<AdminEvents>> {
    let limit = page_limit(params.limit, DEFAULT_LIMIT)?;
    if let Some(subject) = &params.subject {
        let known = subject.starts_with("client:") || subject.starts_with("account:");
        if !known || subject.len() > MAX_SUBJECT {
            return Err(Error::InvalidRequest(
                "subject must be client:<id> or account:<id>".into(),
            ));
        }
    }
    let events = db::admin_events::list(&app.db, params.subject.as_deref(), limit).await?;
    Ok(axum::Json(AdminEvents { events }))
}

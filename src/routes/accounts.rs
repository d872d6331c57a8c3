//! `/v1/accounts`: the configured accounts as operators need to see them, and pausing.

use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::extract::Admin;
use super::AppState;
use crate::db;
use crate::domain::time;
use crate::domain::usage::Window;
use crate::error::{Error, ErrorBody, Result};

/// A configured account with what the router knows of it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AccountEntry {
    id: u32,
    label: String,
    email: Option<String>,
    paused: bool,
    /// Approved logins whose refresh token the provider has not refused.
    live_tokens: i64,
    last_approved_at: Option<DateTime<Utc>>,
    last_failure_at: Option<DateTime<Utc>>,
    last_failure: Option<String>,
    /// The earliest refresh deadline among its live logins: when it must be logged in
    /// again at the latest.
    soonest_relogin_at: Option<DateTime<Utc>>,
    usage: Usage,
}

/// The account's last usage reading (see `oauth.usage_url`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Usage {
    /// The 5-hour window; null before any reading.
    five_hour: Option<Window>,
    /// The weekly window; null before any reading.
    seven_day: Option<Window>,
    read_at: Option<DateTime<Utc>>,
    /// Why the latest reading failed; the last good one stays.
    error: Option<String>,
}

/// The configured accounts.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Accounts {
    accounts: Vec<AccountEntry>,
}

/// Whether an account is paused now.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Paused {
    id: u32,
    paused: bool,
}

/// `GET /v1/accounts`: one entry per configured account.
#[utoipa::path(
    get,
    path = "/v1/accounts",
    operation_id = "listAccounts",
    tag = "accounts",
    summary = "The configured accounts: state, health, refresh deadlines and usage",
    security(("admin_token" = []), ("console_session" = [])),
    responses((status = 200, description = "One entry per configured account", body = Accounts))
)]
pub async fn list(State(app): State<AppState>, _: Admin) -> Result<axum::Json<Accounts>> {
    Ok(axum::Json(Accounts {
        accounts: entries(&app).await?,
    }))
}

/// The configured accounts with what the router knows of each, for the API and the console.
pub async fn entries(app: &AppState) -> Result<Vec<AccountEntry>> {
    let facts = db::accounts::facts(&app.db).await?;
    let accounts = app
        .config
        .accounts
        .iter()
        .map(|a| {
            let f = facts.get(&a.id).cloned().unwrap_or_default();
            AccountEntry {
                id: a.id,
                label: a.label.clone(),
                email: a.email.clone(),
                paused: f.paused,
                live_tokens: f.live_tokens,
                last_approved_at: f.last_approved_at,
                last_failure_at: f.last_failure_at,
                last_failure: f.last_failure,
                soonest_relogin_at: f.soonest_relogin_at,
                usage: Usage {
                    five_hour: f.usage.five_hour,
                    seven_day: f.usage.seven_day,
                    read_at: f.usage_read_at,
                    error: f.usage_error,
                },
            }
        })
        .collect();
    Ok(accounts)
}

#[utoipa::path(
    post,
    path = "/v1/accounts/{id}/pause",
    operation_id = "pauseAccount",
    tag = "accounts",
    summary = "Pause an account: nobody may approve with it until resumed",
    params(("id" = u32, Path, description = "The account id")),
    security(("admin_token" = []), ("console_session" = [])),
    responses(
        (status = 200, description = "Paused (pausing twice is not an error)", body = Paused),
        (status = 400, description = "`unknown_account`, or `invalid_request` (not a number)", body = ErrorBody),
    )
)]
pub async fn pause(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<axum::Json<Paused>> {
    set_paused(&app, &id, true).await
}

#[utoipa::path(
    post,
    path = "/v1/accounts/{id}/resume",
    operation_id = "resumeAccount",
    tag = "accounts",
    summary = "Resume a paused account",
    params(("id" = u32, Path, description = "The account id")),
    security(("admin_token" = []), ("console_session" = [])),
    responses(
        (status = 200, description = "Active (resuming twice is not an error)", body = Paused),
        (status = 400, description = "`unknown_account`, or `invalid_request` (not a number)", body = ErrorBody),
    )
)]
pub async fn resume(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<axum::Json<Paused>> {
    set_paused(&app, &id, false).await
}

/// Pausing twice (or resuming twice) is not an error: the answer says how it stands.
async fn set_paused(app: &AppState, raw: &str, paused: bool) -> Result<axum::Json<Paused>> {
    let id: u32 = raw
        .parse()
        .map_err(|_| Error::InvalidRequest("the account id must be a number".into()))?;
    if app.config.account(id).is_none() {
        return Err(Error::UnknownAccount(id));
    }
    db::accounts::set_paused(&app.db, id, paused, time::now()).await?;
    tracing::info!(account_id = id, paused, "account pause changed");
    Ok(axum::Json(Paused { id, paused }))
}

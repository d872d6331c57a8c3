//! `/v1/accounts`: the configured accounts as operators need to see them, and pausing.

use axum::extract::{Path, State};
use serde_json::{json, Value};

use super::extract::Admin;
use super::AppState;
use crate::db;
use crate::domain::time;
use crate::error::{Error, Result};

/// `GET /v1/accounts`: one entry per configured account.
pub async fn list(State(app): State<AppState>, _: Admin) -> Result<axum::Json<Value>> {
    Ok(axum::Json(json!({ "accounts": entries(&app).await? })))
}

/// The configured accounts with what the router knows of each, for the API and the console.
pub async fn entries(app: &AppState) -> Result<Vec<Value>> {
    let facts = db::accounts::facts(&app.db).await?;
    let accounts: Vec<Value> = app
        .config
        .accounts
        .iter()
        .map(|a| {
            let f = facts.get(&a.id).cloned().unwrap_or_default();
            json!({
                "id": a.id,
                "label": a.label,
                "email": a.email,
                "paused": f.paused,
                "live_tokens": f.live_tokens,
                "last_approved_at": f.last_approved_at,
                "last_failure_at": f.last_failure_at,
                "last_failure": f.last_failure,
                "soonest_relogin_at": f.soonest_relogin_at,
                "usage": {
                    "five_hour": f.usage.five_hour,
                    "seven_day": f.usage.seven_day,
                    "read_at": f.usage_read_at,
                    "error": f.usage_error,
                },
            })
        })
        .collect();
    Ok(accounts)
}

pub async fn pause(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>> {
    set_paused(&app, &id, true).await
}

pub async fn resume(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>> {
    set_paused(&app, &id, false).await
}

/// Pausing twice (or resuming twice) is not an error: the answer says how it stands.
async fn set_paused(app: &AppState, raw: &str, paused: bool) -> Result<axum::Json<Value>> {
    let id: u32 = raw
        .parse()
        .map_err(|_| Error::InvalidRequest("the account id must be a number".into()))?;
    if app.config.account(id).is_none() {
        return Err(Error::UnknownAccount(id));
    }
    db::accounts::set_paused(&app.db, id, paused, time::now()).await?;
    tracing::info!(account_id = id, paused, "account pause changed");
    Ok(axum::Json(json!({ "id": id, "paused": paused })))
}

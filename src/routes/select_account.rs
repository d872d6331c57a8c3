//! `POST /v1/token-requests/{id}/select-account`: the operator's choice of account.
//!
//! The order matters. The new state and verifier are written *before* the control browser
//! is called, because a provider that remembers consent can redirect to the callback before
//! the control browser has even answered, and that callback must find its state. If the
//! control browser then fails, the request is put back exactly as it was, unless something
//! (that early callback, a deny, a cancel, another select) has moved it on meanwhile.

use axum::extract::State;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{json, Value};

use super::extract::{Admin, Json, RequestId};
use super::AppState;
use crate::db;
use crate::db::requests::{NewLogin, StartedLogin};
use crate::domain::{secret, time, Actor, Audit, Status, Transition};
use crate::error::{Error, Result};
use uuid::Uuid;

/// Another writer can move the row between our read and our write. Each lost race means
/// someone else's write landed, so retrying makes progress; after this many in a row the
/// caller is told to retry (503) rather than keep a handler spinning.
const MAX_ATTEMPTS: usize = 10;

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
    open_login(&app, id, body.account_id, Actor::Admin)
        .await
        .map(axum::Json)
}

/// Starts a login of request `id` with `account_id` and asks the control browser to open
/// it, as an operator's select-account or the approval policy does. The account must be a
/// configured one, not paused, and one the request's enrolled client may use.
pub async fn open_login(app: &AppState, id: Uuid, account_id: u32, actor: Actor) -> Result<Value> {
    if !app.config.account_allowed(account_id) {
        return Err(Error::UnknownAccount(account_id));
    }
    if db::accounts::is_paused(&app.db, account_id).await? {
        return Err(Error::AccountPaused(account_id));
    }
    for _ in 0..MAX_ATTEMPTS {
        let before = db::requests::find_flow(&app.db, id)
            .await?
            .ok_or(Error::RequestNotFound)?;
        let now = time::now();
        let status = before.status.at(before.expires_at, now);
        if !Transition::SelectAccount.allowed_from(status) {
            return Err(Error::invalid_status(status, "pending or in_progress"));
        }
        if let Some(client) = before.client_id {
            // A deleted client's requests keep no bound: there is nothing to bound them by.
            if let Some(client) = db::clients::find(&app.db, client).await? {
                if !client.accounts.is_empty() && !client.accounts.contains(&account_id) {
                    return Err(Error::AccountNotAllowed(account_id));
                }
            }
        }
        let login = app.oauth.start_login(&before.scopes);
        let state_hash = secret::hash(login.state.expose_secret());
        let verifier = login.pkce_verifier.expose_secret();
        let audit = Audit::new(actor.clone(), "select_account")
            .with_detail(format!("account {account_id}"));
        let new_login = NewLogin {
            account_id,
            state_hash: &state_hash,
            pkce_verifier: verifier,
        };
        let started =
            db::requests::start_login(&app.db, id, &before, &new_login, now, &audit).await?;
        let Some(version) = started else { continue };
        tracing::info!(request_id = %id, account_id, %actor, "login started; asking the control browser");

        if let Err(reason) = app
            .control_browser
            .open_auth(account_id, &login.url, id)
            .await
        {
            let audit = Audit::new(actor.clone(), "restore")
                .with_detail(format!("control browser failed: {reason}"));
            let started = StartedLogin {
                version,
                state_hash: &state_hash,
                account_id,
            };
            let restored =
                db::requests::restore(&app.db, id, &started, &before, time::now(), &audit).await?;
            tracing::warn!(request_id = %id, account_id, ?reason, restored, "control browser failed");
            return Err(Error::ControlBrowserFailed(reason));
        }
        return Ok(json!({
            "request_id": id,
            "status": Status::InProgress,
            "account_id": account_id,
        }));
    }
    Err(Error::Busy)
}

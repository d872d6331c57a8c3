//! `/v1/clients`: enrolling the clients whose requests are verified. A client's key is
//! shown once, in the answer that creates or rotates it; only its hash is stored.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::extract::{Admin, Json};
use super::AppState;
use crate::config::MAX_TOKEN_LIFETIME_SECS;
use crate::db;
use crate::db::clients::{Change, NewClient};
use crate::domain::scopes::validate_scope;
use crate::domain::text::has_hidden_chars;
use crate::domain::{secret, time};
use crate::error::{Error, Result};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddBody {
    name: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    accounts: Vec<u32>,
    #[serde(default)]
    auto_approve: bool,
    #[serde(default)]
    max_token_lifetime_secs: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    scopes: Option<Vec<String>>,
    accounts: Option<Vec<u32>>,
    auto_approve: Option<bool>,
    max_token_lifetime_secs: Option<u64>,
}

/// `POST /v1/clients` → 201 with the key, once.
pub async fn add(
    State(app): State<AppState>,
    _: Admin,
    Json(body): Json<AddBody>,
) -> Result<(StatusCode, axum::Json<Value>)> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 128 || has_hidden_chars(name) {
        return Err(Error::InvalidRequest(
            "name must be 1 to 128 characters without control or format characters".into(),
        ));
    }
    check_bounds(&app, &body.scopes, &body.accounts)?;
    let max_token_lifetime_secs = lifetime(body.max_token_lifetime_secs)?;
    let (id, key) = (Uuid::new_v4(), secret::generate());
    let new = NewClient {
        id,
        name,
        key_hash: &secret::hash(key.expose_secret()),
        scopes: &body.scopes,
        accounts: &body.accounts,
        auto_approve: body.auto_approve,
        max_token_lifetime_secs,
    };
    if !db::clients::insert(&app.db, &new, time::now()).await? {
        return Err(Error::ClientExists(name.to_owned()));
    }
    tracing::info!(client_id = %id, name, "client enrolled");
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "client_id": id,
            "name": name,
            "client_key": key.expose_secret(),
            "scopes": body.scopes,
            "accounts": body.accounts,
            "auto_approve": body.auto_approve,
            "max_token_lifetime_secs": body.max_token_lifetime_secs,
        })),
    ))
}

/// `GET /v1/clients`: never a key or a hash.
pub async fn list(State(app): State<AppState>, _: Admin) -> Result<axum::Json<Value>> {
    let clients = db::clients::list(&app.db).await?;
    Ok(axum::Json(json!({ "clients": clients })))
}

/// `POST /v1/clients/{id}/rotate-key` → the new key, once; the old one stops working now.
pub async fn rotate_key(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>> {
    let id = client_id(&id)?;
    let key = secret::generate();
    let hash = secret::hash(key.expose_secret());
    apply(&app, id, Change::RotateKey(&hash)).await?;
    Ok(axum::Json(
        json!({ "client_id": id, "client_key": key.expose_secret() }),
    ))
}

pub async fn disable(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>> {
    changed(&app, client_id(&id)?, Change::Disabled(true)).await
}

pub async fn enable(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>> {
    changed(&app, client_id(&id)?, Change::Disabled(false)).await
}

/// `PATCH /v1/clients/{id}` with any of scopes, accounts, auto_approve,
/// max_token_lifetime_secs.
pub async fn update(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
    Json(body): Json<UpdateBody>,
) -> Result<axum::Json<Value>> {
    let id = client_id(&id)?;
    check_bounds(
        &app,
        body.scopes.as_deref().unwrap_or_default(),
        body.accounts.as_deref().unwrap_or_default(),
    )?;
    let change = Change::Update {
        scopes: body.scopes.as_deref(),
        accounts: body.accounts.as_deref(),
        auto_approve: body.auto_approve,
        max_token_lifetime_secs: body.max_token_lifetime_secs.map(lifetime).transpose()?,
    };
    changed(&app, id, change).await
}

/// `DELETE /v1/clients/{id}`: its requests stay, with the name they were made under.
pub async fn remove(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>> {
    let id = client_id(&id)?;
    if !db::clients::delete(&app.db, id, time::now()).await? {
        return Err(Error::ClientNotFound);
    }
    Ok(axum::Json(json!({ "client_id": id, "removed": true })))
}

async fn apply(app: &AppState, id: Uuid, change: Change<'_>) -> Result<()> {
    if db::clients::change(&app.db, id, change, time::now()).await? {
        Ok(())
    } else {
        Err(Error::ClientNotFound)
    }
}

/// Applies `change` and answers the client as it is now.
async fn changed(app: &AppState, id: Uuid, change: Change<'_>) -> Result<axum::Json<Value>> {
    apply(app, id, change).await?;
    let client = db::clients::find(&app.db, id)
        .await?
        .ok_or(Error::ClientNotFound)?;
    Ok(axum::Json(json!(client)))
}

/// A client's long-lived token maximum, within what any key may hold.
fn lifetime(secs: u64) -> Result<i64> {
    if secs > MAX_TOKEN_LIFETIME_SECS {
        return Err(Error::InvalidRequest(format!(
            "max_token_lifetime_secs must be at most {MAX_TOKEN_LIFETIME_SECS} (ten years)"
        )));
    }
    Ok(secs as i64)
}

fn client_id(raw: &str) -> Result<Uuid> {
    Uuid::parse_str(raw).map_err(|_| Error::InvalidRequest("the client id must be a UUID".into()))
}

/// A client's scopes must be valid (and allowed by the router); its accounts configured.
fn check_bounds(app: &AppState, scopes: &[String], accounts: &[u32]) -> Result<()> {
    let allowed = &app.config.oauth.allowed_scopes;
    for scope in scopes {
        validate_scope(scope).map_err(Error::InvalidRequest)?;
        if !allowed.is_empty() && !allowed.contains(scope) {
            return Err(Error::InvalidRequest(format!(
                "scope {scope:?} is not one the router allows"
            )));
        }
    }
    if let Some(unknown) = accounts.iter().find(|a| !app.config.account_allowed(**a)) {
        return Err(Error::UnknownAccount(*unknown));
    }
    Ok(())
}

//! `/v1/clients`: enrolling the clients whose requests are verified. A client's key is
//! shown once, in the answer that creates or rotates it; only its hash is stored.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{Admin, Json};
use super::AppState;
use crate::config::MAX_TOKEN_LIFETIME_SECS;
use crate::db;
use crate::db::clients::{Change, Client, NewClient};
use crate::domain::scopes::validate_scope;
use crate::domain::text::has_hidden_chars;
use crate::domain::{secret, time};
use crate::error::{Error, ErrorBody, Result};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddBody {
    /// 1 to 128 characters, unique.
    #[schema(min_length = 1, max_length = 128)]
    name: String,
    /// Allowed scopes; empty: any the router allows.
    #[serde(default)]
    scopes: Vec<String>,
    /// Allowed account ids; empty: any.
    #[serde(default)]
    accounts: Vec<u32>,
    /// Approve its requests without an operator.
    #[serde(default)]
    auto_approve: bool,
    /// The longest long-lived token it may ask for, in seconds (0: none).
    #[serde(default)]
    #[schema(maximum = 315_360_000)]
    max_token_lifetime_secs: u64,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    scopes: Option<Vec<String>>,
    accounts: Option<Vec<u32>>,
    auto_approve: Option<bool>,
    max_token_lifetime_secs: Option<u64>,
}

/// A client just enrolled, with its key: the only time the key is shown.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Enrolled {
    client_id: Uuid,
    name: String,
    client_key: String,
    scopes: Vec<String>,
    accounts: Vec<u32>,
    auto_approve: bool,
    max_token_lifetime_secs: u64,
}

/// The enrolled clients, never a key or a hash.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Clients {
    clients: Vec<Client>,
}

/// A client's new key, shown once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NewKey {
    client_id: Uuid,
    client_key: String,
}

/// A removed client.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Removed {
    client_id: Uuid,
    removed: bool,
}

/// `POST /v1/clients` → 201 with the key, once.
#[utoipa::path(
    post,
    path = "/v1/clients",
    operation_id = "addClient",
    tag = "clients",
    summary = "Enroll a client",
    request_body = AddBody,
    security(("admin_token" = []), ("console_session" = [])),
    responses(
        (status = 201, description = "Enrolled; the key is shown only here", body = Enrolled),
        (status = 400, description = "`invalid_request` or `unknown_account`", body = ErrorBody),
        (status = 409, description = "`client_exists`", body = ErrorBody),
    )
)]
pub async fn add(
    State(app): State<AppState>,
    _: Admin,
    Json(body): Json<AddBody>,
) -> Result<(StatusCode, axum::Json<Enrolled>)> {
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
        axum::Json(Enrolled {
            client_id: id,
            name: name.to_owned(),
            client_key: key.expose_secret().to_owned(),
            scopes: body.scopes,
            accounts: body.accounts,
            auto_approve: body.auto_approve,
            max_token_lifetime_secs: body.max_token_lifetime_secs,
        }),
    ))
}

/// `GET /v1/clients`: never a key or a hash.
#[utoipa::path(
    get,
    path = "/v1/clients",
    operation_id = "listClients",
    tag = "clients",
    summary = "The enrolled clients",
    security(("admin_token" = []), ("console_session" = [])),
    responses((status = 200, description = "The clients, by name", body = Clients))
)]
pub async fn list(State(app): State<AppState>, _: Admin) -> Result<axum::Json<Clients>> {
    let clients = db::clients::list(&app.db).await?;
    Ok(axum::Json(Clients { clients }))
}

/// `POST /v1/clients/{id}/rotate-key` → the new key, once; the old one stops working now.
#[utoipa::path(
    post,
    path = "/v1/clients/{id}/rotate-key",
    operation_id = "rotateClientKey",
    tag = "clients",
    summary = "Give a client a new key; the old one stops working at once",
    params(("id" = Uuid, Path, description = "The client id")),
    security(("admin_token" = []), ("console_session" = [])),
    responses(
        (status = 200, description = "The new key, shown only here", body = NewKey),
    )
)]
pub async fn rotate_key(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<axum::Json<NewKey>> {
    let id = client_id(&id)?;
    let key = secret::generate();
    let hash = secret::hash(key.expose_secret());
    apply(&app, id, Change::RotateKey(&hash)).await?;
    Ok(axum::Json(NewKey {
        client_id: id,
        client_key: key.expose_secret().to_owned(),
    }))
}

#[utoipa::path(
    post,
    path = "/v1/clients/{id}/disable",
    operation_id = "disableClient",
    tag = "clients",
    summary = "Refuse a client's key until enabled again",
    params(("id" = Uuid, Path, description = "The client id")),
    security(("admin_token" = []), ("console_session" = [])),
    responses(
        (status = 200, description = "The client as it is now", body = Client),
    )
)]
pub async fn disable(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<axum::Json<Client>> {
    changed(&app, client_id(&id)?, Change::Disabled(true)).await
}

#[utoipa::path(
    post,
    path = "/v1/clients/{id}/enable",
    operation_id = "enableClient",
    tag = "clients",
    summary = "Accept a disabled client's key again",
    params(("id" = Uuid, Path, description = "The client id")),
    security(("admin_token" = []), ("console_session" = [])),
    responses(
        (status = 200, description = "The client as it is now", body = Client),
    )
)]
pub async fn enable(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<axum::Json<Client>> {
    changed(&app, client_id(&id)?, Change::Disabled(false)).await
}

/// `PATCH /v1/clients/{id}` with any of scopes, accounts, auto_approve,
/// max_token_lifetime_secs.
#[utoipa::path(
    patch,
    path = "/v1/clients/{id}",
    operation_id = "updateClient",
    tag = "clients",
    summary = "Change a client's bounds",
    params(("id" = Uuid, Path, description = "The client id")),
    request_body = UpdateBody,
    security(("admin_token" = []), ("console_session" = [])),
    responses(
        (status = 200, description = "The client as it is now", body = Client),
        (status = 400, description = "`invalid_request` or `unknown_account`", body = ErrorBody),
    )
)]
pub async fn update(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
    Json(body): Json<UpdateBody>,
) -> Result<axum::Json<Client>> {
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
#[utoipa::path(
    delete,
    path = "/v1/clients/{id}",
    operation_id = "removeClient",
    tag = "clients",
    summary = "Remove a client; its requests stay, with its name",
    params(("id" = Uuid, Path, description = "The client id")),
    security(("admin_token" = []), ("console_session" = [])),
    responses(
        (status = 200, description = "Removed", body = Removed),
    )
)]
pub async fn remove(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<axum::Json<Removed>> {
    let id = client_id(&id)?;
    if !db::clients::delete(&app.db, id, time::now()).await? {
        return Err(Error::ClientNotFound);
    }
    Ok(axum::Json(Removed {
        client_id: id,
        removed: true,
    }))
}

async fn apply(app: &AppState, id: Uuid, change: Change<'_>) -> Result<()> {
    if db::clients::change(&app.db, id, change, time::now()).await? {
        Ok(())
    } else {
        Err(Error::ClientNotFound)
    }
}

/// Applies `change` and answers the client as it is now.
async fn changed(app: &AppState, id: Uuid, change: Change<'_>) -> Result<axum::Json<Client>> {
    apply(app, id, change).await?;
    let client = db::clients::find(&app.db, id)
        .await?
        .ok_or(Error::ClientNotFound)?;
    Ok(axum::Json(client))
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

//! `/v1/token-requests`: create, poll, list, deny and cancel.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{page_limit, Admin, Bearer, Json, PeerAddr, Query, RequestId};
use super::status_body::{StatusBody, TokenView};
use super::AppState;
use crate::db;
use crate::db::clients::Client;
use crate::db::requests::Listed;
use crate::domain::peer::budget_key;
use crate::domain::request::CreateBody;
use crate::domain::{
    secret, time, Actor, Audit, NewTokenRequest, Status, TokenRequest, Transition,
};
use crate::error::{Error, ErrorBody, Result};
use crate::service::flow;
use crate::service::waiters::{Bounds, Skipped};

/// Listings return this many requests unless told otherwise.
const DEFAULT_LIST_LIMIT: u32 = 100;

/// The answer to a create: the poll token appears only here.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Created {
    request_id: Uuid,
    status: Status,
    poll_token: String,
    expires_at: DateTime<Utc>,
    poll_interval_secs: u64,
}

#[utoipa::path(
    post,
    path = "/v1/token-requests",
    operation_id = "createTokenRequest",
    tag = "token requests",
    summary = "Ask for a token",
    request_body = CreateBody,
    security((), ("client_key" = [])),
    responses(
        (status = 201, description = "Stored; poll it with the poll token", body = Created),
        (status = 400, description = "`invalid_request`, `lifetime_not_allowed` or `invalid_scope`", body = ErrorBody),
        (status = 401, description = "A wrong, rotated-out or disabled client key, or none under `requests.require_client_key`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many creates from this address, or too many open requests", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
/// `POST /v1/token-requests`. With `Authorization: Bearer <client key>` the request is bound
/// to that enrolled client (its name, its allowed scopes, its open-request budget); a key
/// that is wrong, rotated out or disabled is 401, never an unverified request. Without a
/// key it is unverified, unless `requests.require_client_key` refuses it.
pub async fn create(
    State(app): State<AppState>,
    PeerAddr(peer): PeerAddr,
    bearer: Bearer,
    Json(body): Json<CreateBody>,
) -> Result<(StatusCode, axum::Json<Created>)> {
    let client = enrolled_client(&app, &bearer).await?;
    let oauth = &app.config.oauth;
    let defaults = match body.lifetime_secs {
        Some(_) => flow::create::long_lived_defaults(&app.config),
        None => oauth.default_scopes.clone(),
    };
    let mut new = NewTokenRequest::parse(body, &defaults, &oauth.allowed_scopes)
        .map_err(Error::InvalidRequest)?;
    if let Some(client) = &client {
        new.client_name = client.name.clone();
        let allowed = &client.scopes;
        if let Some(scope) = new
            .scopes
            .as_slice()
            .iter()
            .find(|s| !allowed.is_empty() && !allowed.contains(s))
        {
            return Err(Error::InvalidRequest(format!(
                "scope {scope:?} is not one this client may ask for ({})",
                allowed.join(" ")
            )));
        }
    }
    flow::create::check_lifetime(&app.config, &new, client.as_ref())?;
    let per_minute = app.config.limits.creates_per_minute_per_ip;
    app.create_limiter
        .check(budget_key(peer), Instant::now())
        .map_err(|retry_after| Error::RateLimited {
            retry_after,
            message: format!(
                "this address may create {per_minute} requests a minute; wait and retry"
            ),
        })?;
    let stored = flow::create::create(&app, new, client.as_ref(), peer).await?;
    if let Some(client) = client.filter(|c| c.auto_approve) {
        // After the commit, as select-account would: the answer stays 201 pending, and the
        // client's next poll sees the login under way (or the request waiting, if not).
        crate::policy::approve(&app, stored.id, &client).await;
    }
    let created = Created {
        request_id: stored.id,
        status: Status::Pending,
        poll_token: stored.poll_token.expose_secret().to_owned(),
        expires_at: stored.expires_at,
        poll_interval_secs: app.config.requests.poll_interval_secs,
    };
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// The enrolled client whose key the request carries: `None` without a key; 401 for a key
/// that is wrong, rotated out or disabled, and for no key under `require_client_key`.
async fn enrolled_client(app: &AppState, bearer: &Bearer) -> Result<Option<Client>> {
    let Some(key) = &bearer.0 else {
        if app.config.requests.require_client_key {
            return Err(Error::ClientKeyRequired);
        }
        return Ok(None);
    };
    match db::clients::find_by_key(&app.db, &secret::hash(key)).await? {
        Some(client) if !client.disabled => Ok(Some(client)),
        _ => Err(Error::Unauthorized),
    }
}

/// The query of a status poll: `?wait=N` holds the answer up to N seconds for a change.
#[derive(Deserialize)]
pub struct StatusParams {
    wait: Option<String>,
}

/// The header of an answer that could not wait because `limits.max_waiters` were waiting.
pub const WAIT_SKIPPED_HEADER: &str = "x-auth-router-wait";

#[utoipa::path(
    get,
    path = "/v1/token-requests/{id}/status",
    operation_id = "getTokenRequestStatus",
    tag = "token requests",
    summary = "Poll a request, or long-poll it with `wait`",
    params(
        ("id" = Uuid, Path, description = "The request id"),
        ("wait" = Option<u64>, Query, minimum = 0, maximum = 60,
            description = "Hold the answer up to this many seconds (at most `requests.max_wait_secs`) for a change"),
    ),
    security(("poll_token" = [])),
    responses(
        (status = 200, description = "The request as it stands", body = StatusBody,
            headers(("X-Auth-Router-Wait" = String,
                description = "Present when the wait was skipped: `skipped` (too many waiters on this request), `skipped: max_waiters reached`, or `skipped: shutting down`"))),
        (status = 400, description = "`invalid_request_id`, or `invalid_request` (`wait` out of range)", body = ErrorBody),
        (status = 429, description = "`slow_down`: polled sooner than `poll_interval_secs` after the previous poll", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
/// `GET /v1/token-requests/{id}/status[?wait=N]`.
///
/// With `wait`, a request that is still open holds the answer until its row changes (any
/// committed change wakes it, see [`crate::db::commit`]), its deadline passes, or N seconds
/// pass, then answers as it stands. The subscription is made before the row is read, so a
/// change that commits in between is not missed; a client that hangs up drops the handler
/// and with it the subscription.
pub async fn status(
    State(app): State<AppState>,
    RequestId(id): RequestId,
    bearer: Bearer,
    params: std::result::Result<Query<StatusParams>, Error>,
) -> Result<Response> {
    // A missing poll token is 401 before a malformed query is 400.
    let poll_token = bearer.0.ok_or(Error::Unauthorized)?;
    let Query(params) = params?;
    let max_wait = app.config.requests.max_wait_secs;
    let asked = match params.wait.as_deref() {
        None => 0,
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|w| *w <= max_wait)
            .ok_or_else(|| {
                Error::InvalidRequest(format!(
                    "wait must be a whole number of seconds from 0 to {max_wait}"
                ))
            })?,
    };
    let bounds = Bounds {
        total: app.config.limits.max_waiters,
        per_request: app.config.limits.max_waiters_per_request,
    };
    let (mut subscription, skipped) = match asked {
        0 => (None, None),
        _ => match app.effects.waiters().subscribe(id, bounds) {
            Ok(subscription) => (Some(subscription), None),
            Err(skipped) => (None, Some(skipped)),
        },
    };
    // The hot path: most polls are answered from the process's read-through cache.
    let mut stored = app
        .effects
        .find_cached(&app.db, id)
        .await?
        .ok_or(Error::RequestNotFound)?;
    if !secret::verify(&poll_token, &stored.poll_token_hash) {
        return Err(Error::Unauthorized);
    }
    // A long poll is the polite client: never told to slow down. Only a poll with the right
    // token counts, or anyone could throttle a legitimate client.
    if asked < app.config.requests.poll_interval_secs {
        app.poll_pacer
            .check(id, Instant::now())
            .map_err(|retry_after| Error::SlowDown { retry_after })?;
    }
    if let Some(subscription) = &mut subscription {
        let now = time::now();
        let seen = stored.request.effective_status(now);
        if !seen.is_terminal() {
            let until_expiry = (stored.request.expires_at - now)
                .to_std()
                .unwrap_or_default();
            let deadline =
                tokio::time::Instant::now() + Duration::from_secs(asked).min(until_expiry);
            loop {
                let woken = tokio::select! {
                    _ = subscription.changed() => true,
                    _ = tokio::time::sleep_until(deadline) => false,
                };
                stored = app
                    .effects
                    .find_cached(&app.db, id)
                    .await?
                    .ok_or(Error::RequestNotFound)?;
                // A wake with the status this poll already has (on PostgreSQL: another
                // router's announcement of a change it already read, a reconnection, the
                // fallback re-check) waits on.
                let changed = stored.request.effective_status(time::now()) != seen;
                if !woken || changed || subscription.closed() {
                    break;
                }
            }
        }
    }
    let body = status_body(&app, &stored.request).await?;
    let mut response = body.into_response();
    let skipped = match skipped {
        Some(Skipped::Full) => Some("skipped: max_waiters reached"),
        Some(Skipped::RequestFull) => Some("skipped"),
        Some(Skipped::Closed) => Some("skipped: shutting down"),
        None => None,
    };
    if let Some(value) = skipped {
        response
            .headers_mut()
            .insert(WAIT_SKIPPED_HEADER, HeaderValue::from_static(value));
    }
    Ok(response)
}

async fn status_body(app: &AppState, request: &TokenRequest) -> Result<StatusBody> {
    let status = request.effective_status(time::now());
    let bundle = match status {
        Status::Approved => db::tokens::find(&app.db, request.id).await?,
        _ => None,
    };
    let refresh_expires_at = bundle.as_ref().and_then(|b| b.refresh_expires_at);
    let token = bundle.map(|b| TokenView::new(b, &app.config));
    Ok(StatusBody {
        request_id: request.id,
        status,
        client_id: request.client_id,
        verified: request.client_id.is_some(),
        account_id: request.account_id,
        token,
        error: request.error.clone(),
        expires_at: request.expires_at,
        poll_interval_secs: app.config.requests.poll_interval_secs,
        refresh_expires_at,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    status: Option<String>,
    limit: Option<u32>,
}

/// A request as listings show it: never a token or a secret.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ListItem {
    request_id: Uuid,
    client_id: Option<Uuid>,
    verified: bool,
    client_name: String,
    hostname: String,
    scopes: Vec<String>,
    status: Status,
    account_id: Option<u32>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    error: Option<String>,
    /// Whose tokens an approved request got, when the provider said.
    account_email: Option<String>,
    organization_name: Option<String>,
    /// The address the request came from, when recorded.
    peer_addr: Option<String>,
    /// The long-lived token it asks for, in seconds; null: an ordinary one.
    lifetime_secs: Option<u64>,
    /// When an approved request's refresh token dies for good; null when unknown.
    refresh_expires_at: Option<DateTime<Utc>>,
}

impl ListItem {
    pub fn new(listed: Listed, now: DateTime<Utc>) -> Self {
        let Listed {
            request: r,
            account_email,
            organization_name,
            peer_addr,
            refresh_expires_at,
        } = listed;
        ListItem {
            client_id: r.client_id,
            verified: r.client_id.is_some(),
            account_email,
            organization_name,
            peer_addr,
            refresh_expires_at,
            lifetime_secs: r.lifetime_secs,
            request_id: r.id,
            status: r.effective_status(now),
            scopes: r.scopes.as_slice().to_vec(),
            client_name: r.client_name,
            hostname: r.hostname,
            account_id: r.account_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
            expires_at: r.expires_at,
            error: r.error,
        }
    }
}

/// A listing of requests, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Listing {
    requests: Vec<ListItem>,
}

#[utoipa::path(
    get,
    path = "/v1/token-requests",
    operation_id = "listTokenRequests",
    tag = "token requests",
    summary = "List requests, newest first",
    params(
        ("status" = Option<Status>, Query, description = "Only requests with this status"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "At most this many (default 100)"),
    ),
    security(("admin_token" = []), ("console_session" = [])),
    responses((status = 200, description = "The requests", body = Listing))
)]
pub async fn list(
    State(app): State<AppState>,
    _: Admin,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<Listing>> {
    let status = params
        .status
        .map(|s| s.parse::<Status>())
        .transpose()
        .map_err(Error::InvalidRequest)?;
    let limit = page_limit(params.limit, DEFAULT_LIST_LIMIT)?;
    let now = time::now();
    let requests = db::requests::list(&app.db, status, limit).await?;
    let items: Vec<ListItem> = requests
        .into_iter()
        .map(|r| ListItem::new(r, now))
        .collect();
    Ok(axum::Json(Listing { requests: items }))
}

/// A request's id and its status after an action.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Moved {
    pub request_id: Uuid,
    pub status: Status,
}

#[utoipa::path(
    post,
    path = "/v1/token-requests/{id}/deny",
    operation_id = "denyTokenRequest",
    tag = "token requests",
    summary = "Deny an open request",
    params(("id" = Uuid, Path, description = "The request id")),
    security(("admin_token" = []), ("console_session" = [])),
    responses(
        (status = 200, description = "Denied", body = Moved),
        (status = 409, description = "`invalid_status`: the request is not open", body = ErrorBody),
    )
)]
pub async fn deny(
    State(app): State<AppState>,
    _: Admin,
    RequestId(id): RequestId,
) -> Result<axum::Json<Moved>> {
    finish(&app, id, Transition::Deny, Audit::new(Actor::Admin, "deny")).await
}

/// Cancel takes the request's own poll token, or the admin token.
#[utoipa::path(
    post,
    path = "/v1/token-requests/{id}/cancel",
    operation_id = "cancelTokenRequest",
    tag = "token requests",
    summary = "Cancel an open request",
    params(("id" = Uuid, Path, description = "The request id")),
    security(("poll_token" = []), ("admin_token" = [])),
    responses(
        (status = 200, description = "Cancelled", body = Moved),
        (status = 409, description = "`invalid_status`: the request is not open", body = ErrorBody),
    )
)]
pub async fn cancel(
    State(app): State<AppState>,
    RequestId(id): RequestId,
    bearer: Bearer,
) -> Result<axum::Json<Moved>> {
    let token = bearer.0.as_deref().ok_or(Error::Unauthorized)?;
    let stored = db::requests::find(&app.db, id)
        .await?
        .ok_or(Error::RequestNotFound)?;
    let actor = if secret::verify(token, &stored.poll_token_hash) {
        Actor::Client(stored.request.hostname)
    } else if bearer.is_admin(&app.admin_token_hash) {
        Actor::Admin
    } else {
        return Err(Error::Unauthorized);
    };
    finish(&app, id, Transition::Cancel, Audit::new(actor, "cancel")).await
}

/// Applies a terminal transition by id ([`flow::finish::finish`]).
async fn finish(
    app: &AppState,
    id: Uuid,
    transition: Transition,
    audit: Audit,
) -> Result<axum::Json<Moved>> {
    let status = flow::finish::finish(app, id, transition, audit).await?;
    Ok(axum::Json(Moved {
        request_id: id,
        status,
    }))
}

//! Extractors that answer in the API's own error format instead of axum's plain text.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::AppState;
use crate::db;
use crate::domain::{secret, time, Actor};
use crate::error::Error;

/// `axum::Json`, with malformed bodies as 400, a wrong content type as 415 and an oversized
/// body as 413, all as `{"error", "message"}`.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(json_error(rejection)),
        }
    }
}

fn json_error(rejection: JsonRejection) -> Error {
    match rejection.status() {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Error::UnsupportedMediaType,
        StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge,
        _ => Error::InvalidRequest(rejection.body_text()),
    }
}

/// `axum::extract::Query`, with a malformed or unknown parameter as 400 `invalid_request`.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|e| Error::InvalidRequest(e.body_text()))
    }
}

/// The most rows one listing returns.
pub const MAX_PAGE: u32 = 1000;

/// A listing's `limit`: `default` when not given, else 1 to [`MAX_PAGE`].
pub fn page_limit(asked: Option<u32>, default: u32) -> Result<u32, Error> {
    let limit = asked.unwrap_or(default);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Error::InvalidRequest(format!(
            "limit must be 1 to {MAX_PAGE}"
        )));
    }
    Ok(limit)
}

/// The `{id}` of a token-request path, which must be a UUID.
pub struct RequestId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| Error::InvalidRequestId)?;
        Uuid::parse_str(&raw)
            .map(RequestId)
            .map_err(|_| Error::InvalidRequestId)
    }
}

/// The client's address: the TCP peer, or behind a trusted proxy the client it forwarded
/// for (see [`crate::domain::peer::client_addr`]).
pub struct PeerAddr(pub std::net::IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for PeerAddr
where
    AppState: FromRef<S>,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let app = AppState::from_ref(state);
        let tcp = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip())
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("no peer address")))?;
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        Ok(PeerAddr(crate::domain::peer::client_addr(
            tcp,
            forwarded,
            &app.trusted_proxies,
        )))
    }
}

/// The token of an `Authorization: Bearer …` header, if there is one.
pub struct Bearer(pub Option<String>);

impl Bearer {
    /// Whether this is the admin token.
    pub fn is_admin(&self, admin_token_hash: &[u8]) -> bool {
        self.0
            .as_deref()
            .is_some_and(|t| secret::verify(t, admin_token_hash))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim().to_owned())
            .filter(|t| !t.is_empty());
        Ok(Bearer(token))
    }
}

/// The console's session cookie.
pub const SESSION_COOKIE: &str = "car_session";
/// The header that carries the session's CSRF token on every change the console makes.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Proof that the caller is an admin: the admin token as a bearer, or a console session
/// (cookie) that also sends its CSRF token with anything but a read.
pub struct Admin;

impl<S: Send + Sync> FromRequestParts<S> for Admin
where
    AppState: FromRef<S>,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let app = AppState::from_ref(state);
        let Guarded { peer, now, bearer } = Guarded::admit(&app, parts, state).await?;
        admin(&app, parts, peer, now, bearer).await
    }
}

/// A request whose address may still present a secret (within its
/// [`crate::throttle::GuessBudget`]), with the bearer token it carries.
struct Guarded {
    peer: std::net::IpAddr,
    now: std::time::Instant,
    bearer: Bearer,
}

impl Guarded {
    async fn admit<S: Send + Sync>(
        app: &AppState,
        parts: &mut Parts,
        state: &S,
    ) -> Result<Self, Error>
    where
        AppState: FromRef<S>,
    {
        let PeerAddr(peer) = PeerAddr::from_request_parts(parts, state).await?;
        let now = std::time::Instant::now();
        app.guesses.admit(peer, now).map_err(guessing)?;
        let bearer = Bearer::from_request_parts(parts, state).await?;
        Ok(Self { peer, now, bearer })
    }
}

/// [`Admin`]'s check once the address is admitted: the admin token (a wrong one spends the
/// address's budget), or a console session with its CSRF token on anything but a read.
async fn admin(
    app: &AppState,
    parts: &Parts,
    peer: std::net::IpAddr,
    now: std::time::Instant,
    bearer: Bearer,
) -> Result<Admin, Error> {
    if bearer.0.is_some() {
        if bearer.is_admin(&app.admin_token_hash) {
            return Ok(Admin);
        }
        app.guesses.failed(peer, now).map_err(guessing)?;
        return Err(Error::Unauthorized);
    }
    let csrf = session_csrf(app, &parts.headers).await?;
    if !parts.method.is_safe() {
        let sent = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !secret::verify(sent, &secret::hash(&csrf)) {
            return Err(Error::Forbidden(
                "this change needs the session's X-CSRF-Token header",
            ));
        }
    }
    Ok(Admin)
}

/// The answer to an address past its budget of wrong secrets ([`crate::throttle::GuessBudget`]).
pub fn guessing(retry_after: std::time::Duration) -> Error {
    Error::RateLimited {
        retry_after,
        message: "too many wrong secrets from this address; wait and retry".into(),
    }
}

/// Who may submit an authorization code: an admin (as [`Admin`] checks), or the control
/// browser with `control_browser.submit_token`, which no other endpoint accepts.
pub struct CodeSubmitter(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for CodeSubmitter
where
    AppState: FromRef<S>,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let app = AppState::from_ref(state);
        let guarded = Guarded::admit(&app, parts, state).await?;
        let is_submitter = match (&guarded.bearer.0, &app.submit_token_hash) {
            (Some(token), Some(hash)) => secret::verify(token, hash),
            _ => false,
        };
        if is_submitter {
            return Ok(CodeSubmitter(Actor::ControlBrowser));
        }
        // Neither the submit token nor, below, the admin token: one wrong secret, counted
        // once (by the admin check).
        let Guarded { peer, now, bearer } = guarded;
        admin(&app, parts, peer, now, bearer).await?;
        Ok(CodeSubmitter(Actor::Admin))
    }
}

/// The CSRF token of the console session the request's cookie names, if that session is
/// live and was signed in with the current admin token; else 401.
pub async fn session_csrf(
    app: &AppState,
    headers: &axum::http::HeaderMap,
) -> Result<String, Error> {
    let cookie = session_cookie(headers).ok_or(Error::Unauthorized)?;
    db::sessions::find(
        &app.db,
        &secret::hash(&cookie),
        &app.session_binding,
        time::now(),
    )
    .await?
    .ok_or(Error::Unauthorized)
}

/// The value of the console's session cookie, if the request carries one.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty())
}

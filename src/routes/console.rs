//! The operator console at `/admin`: a page served by the router itself, every asset
//! embedded in the binary (no CDN, no external font, works offline), on top of the same
//! JSON API as everything else.
//!
//! Signing in with the admin token creates a server-side session: the browser gets a random
//! cookie (HttpOnly, SameSite=Strict), the database keeps its hash, and the page keeps the
//! admin token nowhere. Every change the page makes also sends the session's CSRF token in
//! `X-CSRF-Token` (checked by the [`Admin`] extractor).

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::extract::{
    guessing, session_cookie, session_csrf, Admin, Json, PeerAddr, SESSION_COOKIE,
};
use super::token_requests::ListItem;
use super::AppState;
use crate::db;
use crate::db::admin_events::AdminEvent;
use crate::db::clients::Client;
use crate::domain::{secret, time};
use crate::error::{Error, ErrorBody, Result};

/// How long a console session lasts.
const SESSION_SECS: i64 = 12 * 3600;
/// The console shows at most this many open requests, and this many finished ones.
const MAX_OPEN: u32 = 200;
const MAX_RECENT: u32 = 50;
/// The Changes panel shows this many of the latest client and account changes.
const MAX_CHANGES: u32 = 20;

/// The page may load only its own script and style, and no other site may frame it.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("../../assets/console/index.html");
const APP_JS: &str = include_str!("../../assets/console/app.js");
const APP_CSS: &str = include_str!("../../assets/console/app.css");

#[utoipa::path(get, path = "/admin", operation_id = "consolePage", tag = "console", summary = "The operator console's page",
    responses((status = 200, description = "The page", content_type = "text/html; charset=utf-8", body = String)))]
pub async fn index() -> Response {
    asset(INDEX_HTML, "text/html; charset=utf-8")
}

#[utoipa::path(get, path = "/admin/app.js", operation_id = "consoleScript", tag = "console", summary = "The console's script",
    responses((status = 200, description = "The script", content_type = "text/javascript; charset=utf-8", body = String)))]
pub async fn script() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

#[utoipa::path(get, path = "/admin/app.css", operation_id = "consoleStyle", tag = "console", summary = "The console's style sheet",
    responses((status = 200, description = "The style sheet", content_type = "text/css; charset=utf-8", body = String)))]
pub async fn style() -> Response {
    asset(APP_CSS, "text/css; charset=utf-8")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// The admin token.
    token: String,
}

/// What the page needs once signed in: the CSRF token for its changes, and the accounts.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionBody {
    csrf_token: String,
    accounts: Vec<ConsoleAccount>,
}

/// An account as the page offers it (never a proxy).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConsoleAccount {
    id: u32,
    label: String,
    email: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SignedOut {
    signed_out: bool,
}

/// Everything the console shows, in one call.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Overview {
    now: DateTime<Utc>,
    open: Vec<ListItem>,
    recent: Vec<ListItem>,
    accounts: Vec<super::accounts::AccountEntry>,
    clients: Vec<Client>,
    /// The latest changes to clients and accounts, newest first.
    changes: Vec<AdminEvent>,
    relogin_warning_secs: u64,
}

/// `POST /admin/session`: exchanges the admin token for a session cookie.
///
/// Failed attempts are counted per peer address (`limits.failed_sign_ins_per_minute_per_ip`);
/// past the budget every attempt from that address, right or wrong, is refused with 429
/// until the budget refills, so the admin token cannot be guessed at network speed.
#[utoipa::path(
    post,
    path = "/admin/session",
    operation_id = "signIn",
    tag = "console",
    summary = "Sign in: exchange the admin token for a session cookie",
    request_body = SignIn,
    responses(
        (status = 200, description = "Signed in; the session cookie is set", body = SessionBody,
            headers(("Set-Cookie" = String, description = "The session cookie (HttpOnly, SameSite=Strict)"))),
        (status = 401, description = "`unauthorized`: a wrong token", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many failed sign-ins from this address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn sign_in(
    State(app): State<AppState>,
    PeerAddr(peer): PeerAddr,
    ConnectInfo(tcp_peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<SignIn>,
) -> Result<Response> {
    let now = Instant::now();
    app.guesses.admit(peer, now).map_err(guessing)?;
    if !secret::verify(&body.token, &app.admin_token_hash) {
        tracing::warn!(%peer, "console sign-in refused: wrong admin token");
        app.guesses.failed(peer, now).map_err(guessing)?;
        return Err(Error::Unauthorized);
    }
    let session = secret::generate();
    let csrf = secret::generate();
    let now = time::now();
    let expires_at = now + chrono::Duration::seconds(SESSION_SECS);
    use secrecy::ExposeSecret;
    db::sessions::create(
        &app.db,
        &secret::hash(session.expose_secret()),
        csrf.expose_secret(),
        &app.session_binding,
        now,
        expires_at,
    )
    .await?;
    tracing::info!("console session started");
    // Secure only where the router is reached over https: a Secure cookie is never sent
    // back over plain http, which would lock operators out of a loopback deployment.
    let secure = if reached_over_https(&app, &headers, tcp_peer) {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{SESSION_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={SESSION_SECS}{secure}",
        session.expose_secret()
    );
    let body = session_body(&app, csrf.expose_secret());
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| Error::Internal(e.into()))?,
    );
    Ok(response)
}

/// Whether operators reach the console over https: `admin.public_url` says so, or this
/// sign-in came through a trusted proxy that says it was https (`X-Forwarded-Proto`).
fn reached_over_https(app: &AppState, headers: &HeaderMap, tcp_peer: SocketAddr) -> bool {
    if app.config.admin.public_url.starts_with("https://") {
        return true;
    }
    crate::domain::peer::is_trusted(tcp_peer.ip(), &app.trusted_proxies)
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// `GET /admin/session`: what the page needs once signed in, or 401.
#[utoipa::path(
    get,
    path = "/admin/session",
    operation_id = "getConsoleSession",
    tag = "console",
    summary = "The current console session",
    security(("console_session" = [])),
    responses(
        (status = 200, description = "Signed in", body = SessionBody),
        (status = 401, description = "`unauthorized`: no live session", body = ErrorBody),
    )
)]
pub async fn session(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<axum::Json<SessionBody>> {
    let csrf = session_csrf(&app, &headers).await?;
    Ok(axum::Json(session_body(&app, &csrf)))
}

/// `DELETE /admin/session`: signs out (CSRF-checked like any change).
#[utoipa::path(
    delete,
    path = "/admin/session",
    operation_id = "signOut",
    tag = "console",
    summary = "Sign out",
    security(("console_session" = []), ("admin_token" = [])),
    responses((status = 200, description = "Signed out; the cookie is cleared", body = SignedOut))
)]
pub async fn sign_out(
    State(app): State<AppState>,
    _: Admin,
    headers: HeaderMap,
) -> Result<Response> {
    if let Some(cookie) = session_cookie(&headers) {
        db::sessions::delete(&app.db, &secret::hash(&cookie)).await?;
    }
    let mut response = axum::Json(SignedOut { signed_out: true }).into_response();
    let expired = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&expired).map_err(|e| Error::Internal(e.into()))?,
    );
    Ok(response)
}

/// The CSRF token, and the accounts as the page offers them (never a proxy).
fn session_body(app: &AppState, csrf: &str) -> SessionBody {
    let accounts = app
        .config
        .accounts
        .iter()
        .map(|a| ConsoleAccount {
            id: a.id,
            label: a.label.clone(),
            email: a.email.clone(),
        })
        .collect();
    SessionBody {
        csrf_token: csrf.to_owned(),
        accounts,
    }
}

/// `GET /admin/overview`: everything the page shows (requests, accounts with their health,
/// enrolled clients without their keys), in one call it can repeat every second or two.
#[utoipa::path(
    get,
    path = "/admin/overview",
    operation_id = "consoleOverview",
    tag = "console",
    summary = "Everything the console shows, in one call",
    security(("console_session" = []), ("admin_token" = [])),
    responses((status = 200, description = "The overview", body = Overview))
)]
pub async fn overview(State(app): State<AppState>, _: Admin) -> Result<axum::Json<Overview>> {
    let now = time::now();
    let open = db::requests::list_open(&app.db, MAX_OPEN).await?;
    let recent = db::requests::list_finished(&app.db, MAX_RECENT).await?;
    let open: Vec<ListItem> = open.into_iter().map(|r| ListItem::new(r, now)).collect();
    let recent: Vec<ListItem> = recent.into_iter().map(|r| ListItem::new(r, now)).collect();
    let accounts = super::accounts::entries(&app).await?;
    let clients = db::clients::list(&app.db).await?;
    let changes = db::admin_events::list(&app.db, None, MAX_CHANGES).await?;
    Ok(axum::Json(Overview {
        now,
        open,
        recent,
        accounts,
        clients,
        changes,
        relogin_warning_secs: app.config.notify.relogin_warning_secs,
    }))
}

//! The fake's handlers: authorize, token and open-auth.

use std::collections::HashMap;

use axum::extract::{Query, State as AxumState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::RngCore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::{
    BrowserMode, FakeUpstream, Issued, OpenAuth, Provider, RefreshGrant, TokenFault,
    CLAUDE_CODE_PAGE,
};

/// Which account the fake control browser is acting as, on the authorize request.
const ACCOUNT_HEADER: &str = "x-fake-account";
/// Set by the fake control browser when the "person" clicks deny.
const DENY_HEADER: &str = "x-fake-deny";

fn random(prefix: &str) -> String {
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

pub async fn authorize(
    AxumState(fake): AxumState<FakeUpstream>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let redirect_uri = get("redirect_uri");
    let Ok(mut target) = url::Url::parse(&redirect_uri) else {
        return (StatusCode::BAD_REQUEST, "redirect_uri is not a URL").into_response();
    };
    let state = get("state");
    if get("response_type") != "code"
        || get("client_id").is_empty()
        || state.is_empty()
        || get("code_challenge").is_empty()
        || get("code_challenge_method") != "S256"
    {
        return (
            StatusCode::BAD_REQUEST,
            "need response_type=code, client_id, state, S256 PKCE",
        )
            .into_response();
    }
    let claude = fake.lock().options.provider == Provider::Claude;
    if claude && get("code") != "true" {
        return (
            StatusCode::BAD_REQUEST,
            "Claude's authorize needs code=true",
        )
            .into_response();
    }
    if claude && !claude_redirect(&target) {
        return (
            StatusCode::BAD_REQUEST,
            "Claude accepts only http://localhost:<port>/callback or its code page as redirect_uri",
        )
            .into_response();
    }
    let account = headers
        .get(ACCOUNT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if headers.contains_key(DENY_HEADER) {
        target
            .query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("state", &state);
        return Redirect::to(target.as_str()).into_response();
    }
    let code = random("code-");
    {
        let mut s = fake.lock();
        s.secrets.codes.push(code.clone());
        s.secrets.states.push(state.clone());
        s.codes.insert(
            code.clone(),
            Issued {
                client_id: get("client_id"),
                state: state.clone(),
                redirect_uri,
                challenge: get("code_challenge"),
                scope: get("scope"),
                account,
                used: false,
            },
        );
    }
    target
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &state);
    Redirect::to(target.as_str()).into_response()
}

/// The redirects Anthropic accepts for Claude Code's client.
fn claude_redirect(target: &url::Url) -> bool {
    let local = target.scheme() == "http"
        && target.host_str() == Some("localhost")
        && target.port().is_some()
        && target.path() == "/callback";
    local || target.as_str().split('?').next() == Some(CLAUDE_CODE_PAGE)
}

/// Reads a form or JSON body into string fields, as a real provider would accept either.
fn fields(headers: &HeaderMap, body: &[u8]) -> Option<HashMap<String, String>> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct.starts_with("application/json") {
        let v: HashMap<String, Value> = serde_json::from_slice(body).ok()?;
        Some(
            v.into_iter()
                .filter_map(|(k, v)| match v {
                    Value::String(s) => Some((k, s)),
                    Value::Number(n) => Some((k, n.to_string())),
                    _ => None,
                })
                .collect(),
        )
    } else if ct.starts_with("application/x-www-form-urlencoded") {
        Some(url::form_urlencoded::parse(body).into_owned().collect())
    } else {
        None
    }
}

/// 401 `invalid_client` when the fake requires a client secret and `sent` is not it.
fn check_client_secret(s: &crate::State, sent: Option<&str>) -> Option<Response> {
    let expected = s.options.client_secret.as_deref()?;
    (sent != Some(expected)).then(|| {
        oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "bad client secret",
        )
    })
}

/// The client id and secret, from a Basic header (RFC 6749 §2.3.1) or the body.
fn client_credentials(
    headers: &HeaderMap,
    f: &HashMap<String, String>,
) -> (String, Option<String>) {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            let (id, secret) = s.split_once(':')?;
            let dec = |x: &str| {
                url::form_urlencoded::parse(format!("x={x}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((dec(id)?, dec(secret)?))
        });
    match basic {
        Some((id, secret)) => (id, Some(secret)),
        None => (
            f.get("client_id").cloned().unwrap_or_default(),
            f.get("client_secret").cloned(),
        ),
    }
}

pub async fn token(
    AxumState(fake): AxumState<FakeUpstream>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let fault = {
        let mut s = fake.lock();
        s.token_calls += 1;
        s.token_fault
    };
    match fault {
        Some(TokenFault::ServerError) => {
            return oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "injected",
            )
        }
        Some(TokenFault::NotJson) => {
            return (
                [(header::CONTENT_TYPE, "application/json")],
                "<html>oops</html>",
            )
                .into_response()
        }
        Some(TokenFault::Delay(d)) => tokio::time::sleep(d).await,
        Some(TokenFault::RateLimited(retry_after)) => {
            let mut response = oauth_error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "injected",
            );
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, secs.to_string().parse().unwrap());
            }
            return response;
        }
        None => {}
    }
    let claude = fake.lock().options.provider == Provider::Claude;
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    fake.lock().token_user_agents.push(agent.clone());
    // Anthropic's token endpoint is reported to rate-limit every client that is not Claude
    // Code, whatever it sends.
    if claude && !agent.starts_with("claude-cli/") {
        return oauth_error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "Rate limited",
        );
    }
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if claude && !json_body {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the token endpoint takes JSON only",
        );
    }
    let Some(f) = fields(&headers, &body) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "unsupported content type",
        );
    };
    let (client_id, client_secret) = client_credentials(&headers, &f);
    let mut s = fake.lock();
    if let Some(refused) = check_client_secret(&s, client_secret.as_deref()) {
        return refused;
    }
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let no_rotation = s.options.no_rotation;
    let mut issue_refresh = true;
    let mut lifetime = None;
    let (scope, account) = match get("grant_type").as_str() {
        "authorization_code" => {
            let verifier = get("code_verifier");
            s.secrets.verifiers.push(verifier.clone());
            let Some(issued) = s.codes.get_mut(&get("code")) else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "unknown code");
            };
            if issued.used {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "code already used",
                );
            }
            issued.used = true;
            let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if issued.challenge != challenge {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "PKCE verifier mismatch",
                );
            }
            if issued.redirect_uri != get("redirect_uri") || issued.client_id != client_id {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "redirect_uri or client_id mismatch",
                );
            }
            if claude && issued.state != get("state") {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "state must be the authorize request's",
                );
            }
            if let Some(asked) = f.get("expires_in") {
                // `claude setup-token`'s long-lived token: inference scopes only, at most a
                // year, and nothing to refresh.
                let allowed = asked.parse::<u64>().is_ok_and(|n| n <= MAX_LIFETIME)
                    && issued
                        .scope
                        .split_whitespace()
                        .all(|s| LONG_LIVED_SCOPES.contains(&s));
                if !allowed {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "Custom expires_in not allowed",
                    );
                }
                lifetime = asked.parse::<u64>().ok();
                issue_refresh = false;
            }
            (issued.scope.clone(), issued.account)
        }
        "refresh_token" => {
            let Some(grant) = s.refresh.get_mut(&get("refresh_token")) else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "unknown refresh token",
                );
            };
            if grant.revoked || grant.client_id != client_id {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "refresh token revoked",
                );
            }
            let (scope, account) = (grant.scope.clone(), grant.account);
            if no_rotation {
                issue_refresh = false;
            } else {
                // Rotation: a refresh token works once, as with the providers this router fronts.
                grant.revoked = true;
            }
            (scope, account)
        }
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "unsupported grant_type",
            )
        }
    };
    let access = random(&format!("fake-at-{account}-"));
    s.secrets.access_tokens.push(access.clone());
    s.access.insert(access.clone(), account);
    let default_expiry = if claude { 28800 } else { 3600 };
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": lifetime.or(s.options.expires_in).unwrap_or(default_expiry),
        "scope": scope,
    });
    if claude {
        let email = s
            .options
            .emails
            .get(&account)
            .cloned()
            .unwrap_or_else(|| format!("account-{account}@fake.example"));
        body["account"] = json!({ "uuid": format!("acct-{account}"), "email_address": email });
        body["organization"] = json!({ "uuid": "org-fake", "name": "Fake Team" });
    }
    if issue_refresh && claude {
        // A refresh token's fixed deadline: sent with every grant, as Anthropic's server is
        // reported to, though a refresh does not extend it.
        let lifetime = s
            .options
            .refresh_token_expires_in
            .unwrap_or(CLAUDE_REFRESH_TOKEN_LIFETIME);
        body["refresh_token_expires_in"] = json!(lifetime);
    }
    if issue_refresh {
        let refresh = random("fake-rt-");
        s.secrets.refresh_tokens.push(refresh.clone());
        let grant = RefreshGrant {
            client_id,
            scope,
            account,
            revoked: false,
        };
        s.refresh.insert(refresh.clone(), grant);
        body["refresh_token"] = refresh.into();
    }
    Json(body).into_response()
}

/// RFC 7009 revocation: `token` and `token_type_hint`, with the same client
/// authentication and body formats as the token endpoint. Answers 200 for any token, known
/// or not, as the RFC says; a known refresh token stops working.
pub async fn revoke(
    AxumState(fake): AxumState<FakeUpstream>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(f) = fields(&headers, &body) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "unsupported content type",
        );
    };
    let (_, client_secret) = client_credentials(&headers, &f);
    let mut s = fake.lock();
    s.revocation_calls += 1;
    if s.revocation_fails {
        return oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "injected",
        );
    }
    if let Some(refused) = check_client_secret(&s, client_secret.as_deref()) {
        return refused;
    }
    let Some(token) = f.get("token").cloned() else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is missing",
        );
    };
    if let Some(grant) = s.refresh.get_mut(&token) {
        grant.revoked = true;
    }
    s.access.remove(&token);
    s.revoked.push(token);
    StatusCode::OK.into_response()
}

pub async fn open_auth(
    AxumState(fake): AxumState<FakeUpstream>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (Some(account_id), Some(auth_url)) = (
        q.get("account_id").and_then(|a| a.parse::<u32>().ok()),
        q.get("auth_url").cloned(),
    ) else {
        return (StatusCode::BAD_REQUEST, "need account_id and auth_url").into_response();
    };
    let mode = fake.lock().mode;
    let request_id = q.get("request_id").cloned();
    let record = |status| record(&fake, account_id, &auth_url, request_id.clone(), status);
    let callback_status = match mode {
        BrowserMode::Fail => {
            record(None);
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "control browser exploded",
            )
                .into_response();
        }
        BrowserMode::Hang(d) => {
            tokio::time::sleep(d).await;
            None
        }
        BrowserMode::Record => None,
        BrowserMode::AutoApprove | BrowserMode::AutoDeny => {
            let deny = mode == BrowserMode::AutoDeny;
            match follow(&fake, &auth_url, account_id, deny).await {
                Ok(status) => Some(status),
                Err(e) => return (StatusCode::BAD_GATEWAY, e).into_response(),
            }
        }
    };
    record(callback_status);
    Json(json!({ "opened": true, "account_id": account_id })).into_response()
}

fn record(
    fake: &FakeUpstream,
    account_id: u32,
    auth_url: &str,
    request_id: Option<String>,
    callback_status: Option<u16>,
) {
    let opened = OpenAuth {
        account_id,
        auth_url: auth_url.to_owned(),
        request_id,
        callback_status,
    };
    fake.lock().opened.push(opened);
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("reqwest client")
}

/// Calls the authorize URL as `account` and returns the redirect target.
pub async fn authorize_redirect(
    auth_url: &str,
    account: u32,
    deny: bool,
) -> Result<String, String> {
    let mut request = client()
        .get(auth_url)
        .header(ACCOUNT_HEADER, account.to_string());
    if deny {
        request = request.header(DENY_HEADER, "1");
    }
    let response = request
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| {
            format!(
                "authorize answered {} without a redirect",
                response.status()
            )
        })
}

/// What a browser does: authorize, then follow the redirect to the router's callback. A
/// redirect to Claude's code page is never followed (it is not on this machine): the page's
/// `code#state` is recorded and, when a submitter is set, sent to the router's
/// `POST /v1/codes`, as the Electron app does.
async fn follow(
    fake: &FakeUpstream,
    auth_url: &str,
    account: u32,
    deny: bool,
) -> Result<u16, String> {
    let callback = authorize_redirect(auth_url, account, deny).await?;
    if callback.starts_with(CLAUDE_CODE_PAGE) {
        let url = url::Url::parse(&callback).map_err(|e| e.to_string())?;
        let param = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let shown = format!("{}#{}", param("code"), param("state"));
        let submitter = {
            let mut s = fake.lock();
            s.shown_codes.push(shown.clone());
            s.code_submitter.clone()
        };
        let Some((router, token)) = submitter else {
            return Ok(200);
        };
        let response = client()
            .post(format!("{router}/v1/codes"))
            .bearer_auth(token)
            .json(&json!({ "code": shown }))
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        return Ok(response.status().as_u16());
    }
    let response = client()
        .get(&callback)
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    Ok(response.status().as_u16())
}

/// The scopes a long-lived token may carry, as Anthropic's server is reported to allow.
pub const LONG_LIVED_SCOPES: &[&str] = &["user:inference", "user:profile", "user:file_upload"];
/// The longest `expires_in` a code exchange may ask for: a year.
pub const MAX_LIFETIME: u64 = 31_536_000;

/// The `refresh_token_expires_in` the Claude fake sends: 29 days.
pub const CLAUDE_REFRESH_TOKEN_LIFETIME: u64 = 2_505_600;

//! Claude accounts for real, against the fake playing Anthropic's server as strictly as the
//! tools that log in to it document: the preset, the callback listener, manual code mode,
//! the account email check, refresh rotation, rate limits and egress proxies.

use fake_upstream::{BrowserMode, Options, TokenFault};
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    assert_error, query_param, spawn_claude_app_with, time_of, Created, TestApp, ADMIN_TOKEN,
};
use crate::proxy::CountingProxy;

const SUBMIT_TOKEN: &str = "control-browser-submit-token-0123456789";

async fn claude_app() -> TestApp {
    spawn_claude_app_with(Options::default(), |_| {}).await
}

fn account(id: u32, email: Option<&str>) -> claude_auth_router::config::Account {
    claude_auth_router::config::Account {
        id,
        label: format!("team-{id}"),
        email: email.map(str::to_owned),
        ..Default::default()
    }
}

/// Selects `account`, plays the person in the control browser, and returns the URL the
/// provider redirected to (not yet called).
async fn provider_redirect(app: &TestApp, created: &Created, account: u32) -> String {
    let auth_url = app.select_and_capture(&created.id, account).await;
    app.fake.authorize(&auth_url, account, false).await
}

#[tokio::test]
async fn a_login_works_with_only_the_claude_preset_and_url_overrides_through_the_callback_listener()
{
    let app = claude_app().await;
    let created = app.create_ok().await;

    let auth_url = app.select_and_capture(&created.id, 1).await;
    let callback = app.fake.authorize(&auth_url, 1, false).await;
    let page = app.get(&callback).await;

    assert_eq!(query_param(&auth_url, "code").as_deref(), Some("true"));
    assert_eq!(
        query_param(&auth_url, "client_id").as_deref(),
        Some(claude_auth_router::config::claude::CLIENT_ID)
    );
    assert_eq!(
        query_param(&auth_url, "scope").as_deref(),
        Some("user:profile user:inference user:sessions:claude_code user:mcp_servers user:file_upload")
    );
    let port = app.callback_addr.unwrap().port();
    assert!(
        callback.starts_with(&format!("http://localhost:{port}/callback?")),
        "{callback}"
    );
    assert_eq!(page.status(), StatusCode::OK);
    let status = app.status_ok(&created).await;
    assert_eq!(status["status"], "approved");
    assert_eq!(status["token"]["token_type"], "bearer");
    assert_eq!(
        status["token"]["refresh_token"],
        Value::Null,
        "the refresh token stays in the router"
    );
    let expires: chrono::DateTime<chrono::Utc> = status["token"]["expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let hours = (expires - chrono::Utc::now()).num_minutes() as f64 / 60.0;
    assert!((7.9..=8.0).contains(&hours), "expires_in 28800: {hours} h");
    let listed: Value = app.list("").await.json().await.unwrap();
    assert_eq!(
        listed["requests"][0]["account_email"],
        "account-1@fake.example"
    );
    assert_eq!(listed["requests"][0]["organization_name"], "Fake Team");
    let approve = app.audit_row(&created.id, "approve").await;
    assert!(
        approve["detail"]
            .as_str()
            .unwrap()
            .contains("account-1@fake.example"),
        "{approve}"
    );
}

#[tokio::test]
async fn the_callback_listener_serves_the_callback_and_nothing_else() {
    let app = claude_app().await;
    let callback = format!("http://{}", app.callback_addr.unwrap());

    for path in [
        "/v1/token-requests",
        "/healthz",
        "/metrics",
        "/admin",
        "/oauth/callback",
    ] {
        let response = app.get(&format!("{callback}{path}")).await;
        assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    let no_state = app.get(&format!("{callback}/callback?code=x")).await;
    assert_error(no_state, StatusCode::BAD_REQUEST, "invalid_callback").await;
}

#[tokio::test]
async fn the_main_listener_takes_a_forwarded_callback_too() {
    let app = claude_app().await;
    let created = app.create_ok().await;
    let redirect = provider_redirect(&app, &created, 1).await;
    let query = redirect.split_once('?').unwrap().1;

    let forwarded = app.get(&app.url(&format!("/callback?{query}"))).await;

    assert_eq!(forwarded.status(), StatusCode::OK);
    assert_eq!(app.status_ok(&created).await["status"], "approved");
}

fn manual_mode(config: &mut claude_auth_router::Config) {
    config.oauth.redirect_uri = claude_auth_router::config::claude::CODE_PAGE.into();
    config.control_browser.submit_token = secrecy::SecretString::from(SUBMIT_TOKEN);
}

async fn submit(app: &TestApp, path: &str, code: &str, token: &str) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .bearer_auth(token)
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap()
}

/// The code page's text for a redirect to it: `code#state`.
fn shown(redirect: &str) -> String {
    format!(
        "{}#{}",
        query_param(redirect, "code").unwrap(),
        query_param(redirect, "state").unwrap()
    )
}

#[tokio::test]
async fn in_manual_mode_the_control_browser_submits_the_code_page_with_its_submit_token() {
    let app = spawn_claude_app_with(Options::default(), manual_mode).await;
    let by_state = app.create_ok().await;
    let by_id = app.create_ok().await;
    let first = provider_redirect(&app, &by_state, 1).await;
    let second = provider_redirect(&app, &by_id, 2).await;
    assert!(first.starts_with(claude_auth_router::config::claude::CODE_PAGE));

    let through_codes = submit(&app, "/v1/codes", &shown(&first), SUBMIT_TOKEN).await;
    let path = format!("/v1/token-requests/{}/code", by_id.id);
    let through_request = submit(&app, &path, &shown(&second), SUBMIT_TOKEN).await;

    assert_eq!(through_codes.status(), StatusCode::OK);
    assert_eq!(
        through_codes.json::<Value>().await.unwrap(),
        json!({"request_id": by_state.id, "status": "approved"})
    );
    assert_eq!(through_request.status(), StatusCode::OK);
    for created in [&by_state, &by_id] {
        assert_eq!(app.status_ok(created).await["status"], "approved");
        let approve = app.audit_row(&created.id, "approve").await;
        assert_eq!(approve["actor"], "control_browser");
    }
    let used = submit(&app, "/v1/codes", &shown(&first), SUBMIT_TOKEN).await;
    assert_error(used, StatusCode::BAD_REQUEST, "invalid_code").await;
    let unknown = submit(&app, "/v1/codes", "code#no-such-state", SUBMIT_TOKEN).await;
    assert_error(unknown, StatusCode::BAD_REQUEST, "invalid_code").await;
    let stateless = submit(&app, "/v1/codes", "code-only", ADMIN_TOKEN).await;
    assert_error(stateless, StatusCode::BAD_REQUEST, "invalid_code").await;
}

#[tokio::test]
async fn the_control_browser_app_submits_the_code_page_by_itself() {
    let app = spawn_claude_app_with(Options::default(), manual_mode).await;
    app.fake.set_code_submitter(&app.base, SUBMIT_TOKEN);
    app.fake.set_browser_mode(BrowserMode::AutoApprove);
    let created = app.create_ok().await;

    assert_eq!(app.select(&created.id, 1).await.status(), StatusCode::OK);

    assert_eq!(app.fake.opened()[0].callback_status, Some(200));
    assert_eq!(
        app.fake.opened()[0].request_id.as_deref(),
        Some(created.id.as_str()),
        "open-auth names the request for the control browser's logs"
    );
    assert_eq!(app.status_ok(&created).await["status"], "approved");
}

#[tokio::test]
async fn the_submit_token_is_refused_everywhere_but_the_two_code_endpoints() {
    let app = spawn_claude_app_with(Options::default(), manual_mode).await;
    let created = app.create_ok().await;
    let id = &created.id;
    let refused = [
        ("GET", "/v1/token-requests".to_owned()),
        ("GET", format!("/v1/token-requests/{id}/status")),
        ("POST", format!("/v1/token-requests/{id}/select-account")),
        ("POST", format!("/v1/token-requests/{id}/deny")),
        ("POST", format!("/v1/token-requests/{id}/cancel")),
        ("POST", format!("/v1/token-requests/{id}/refresh")),
        ("POST", format!("/v1/token-requests/{id}/revoke")),
        ("GET", "/v1/audit".to_owned()),
        ("GET", "/admin/overview".to_owned()),
    ];
    for (method, path) in refused {
        let response = app
            .http
            .request(method.parse().unwrap(), app.url(&path))
            .bearer_auth(SUBMIT_TOKEN)
            .json(&json!({"account_id": 1}))
            .send()
            .await
            .unwrap();
        assert!(
            matches!(response.status().as_u16(), 401 | 403),
            "{method} {path}: {}",
            response.status()
        );
    }
    let sign_in = app
        .http
        .post(app.url("/admin/session"))
        .json(&json!({ "token": SUBMIT_TOKEN }))
        .send()
        .await
        .unwrap();
    assert_eq!(sign_in.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.db_status(id).await, "pending", "nothing changed");
}

#[tokio::test]
async fn a_login_to_another_account_than_the_configured_email_is_discarded() {
    let app = spawn_claude_app_with(Options::default(), |c| {
        c.accounts = vec![
            account(1, Some("alice@team.example")),
            account(2, Some("bob@team.example")),
        ];
    })
    .await;
    app.fake.set_account_email(1, "mallory@elsewhere.example");
    app.fake.set_account_email(2, "BOB@Team.Example");
    let wrong = app.create_ok().await;
    let right = app.create_ok().await;

    let redirect = provider_redirect(&app, &wrong, 1).await;
    let refused = app.get(&redirect).await;
    let redirect = provider_redirect(&app, &right, 2).await;
    let accepted = app.get(&redirect).await;

    assert_error(refused, StatusCode::CONFLICT, "account_mismatch").await;
    let status = app.status_ok(&wrong).await;
    assert_eq!(status["status"], "error");
    assert_eq!(status["error"], "account_mismatch");
    assert_eq!(status["token"], Value::Null);
    assert_eq!(
        app.count("token_bundles").await,
        1,
        "only the right login's"
    );
    let row = app.audit_row(&wrong.id, "account_mismatch").await;
    let detail = row["detail"].as_str().unwrap();
    assert!(
        detail.contains("alice@team.example") && detail.contains("mallory@elsewhere.example"),
        "{detail}"
    );
    assert_eq!(
        accepted.status(),
        StatusCode::OK,
        "emails match case-insensitively"
    );
    assert_eq!(app.status_ok(&right).await["status"], "approved");
}

#[tokio::test]
async fn refresh_rotates_with_one_upstream_call_for_eight_and_never_reuses_the_old_token() {
    let app = claude_app().await;
    app.fake.set_browser_mode(BrowserMode::AutoApprove);
    let created = app.create_ok().await;
    assert_eq!(app.select(&created.id, 1).await.status(), StatusCode::OK);
    let calls_before = app.fake.token_calls();
    // The provider takes a moment, so all eight calls arrive while the first is in flight.
    app.fake
        .set_token_fault(Some(TokenFault::Delay(std::time::Duration::from_millis(
            300,
        ))));

    let answers = join_all((0..8).map(|_| app.refresh(&created.id, &created.poll_token))).await;
    app.fake.set_token_fault(None);

    let mut tokens = Vec::new();
    for answer in answers {
        assert_eq!(answer.status(), StatusCode::OK);
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["refresh_token"], Value::Null);
        tokens.push(body["access_token"].as_str().unwrap().to_owned());
    }
    assert!(tokens.windows(2).all(|w| w[0] == w[1]), "{tokens:?}");
    assert_eq!(app.fake.token_calls(), calls_before + 1);
    let again = app.refresh(&created.id, &created.poll_token).await;
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "the rotated token, not the dead one"
    );
    assert_eq!(app.fake.token_calls(), calls_before + 2);
    let issued = app.fake.secrets().refresh_tokens;
    assert_eq!(issued.len(), 3, "each refresh rotated it");
}

#[tokio::test]
async fn a_rate_limited_refresh_answers_502_and_leaves_the_login_usable() {
    let app = claude_app().await;
    app.fake.set_browser_mode(BrowserMode::AutoApprove);
    let created = app.create_ok().await;
    assert_eq!(app.select(&created.id, 1).await.status(), StatusCode::OK);

    for retry_after in [Some(30), None] {
        app.fake
            .set_token_fault(Some(TokenFault::RateLimited(retry_after)));
        let limited = app.refresh(&created.id, &created.poll_token).await;
        let body = assert_error(limited, StatusCode::BAD_GATEWAY, "upstream_failed").await;
        assert!(body["message"].as_str().unwrap().contains("429"), "{body}");
    }
    app.fake.set_token_fault(None);

    assert_eq!(
        app.refresh(&created.id, &created.poll_token).await.status(),
        StatusCode::OK,
        "a rate limit never kills a login"
    );
}

#[tokio::test]
async fn a_rate_limited_exchange_ends_in_error_saying_it_may_be_retried() {
    let app = claude_app().await;
    let created = app.create_ok().await;
    let redirect = provider_redirect(&app, &created, 1).await;
    app.fake
        .set_token_fault(Some(TokenFault::RateLimited(Some(10))));

    let page = app.get(&redirect).await;

    assert_error(page, StatusCode::BAD_GATEWAY, "exchange_failed").await;
    let status = app.status_ok(&created).await;
    assert_eq!(status["status"], "error");
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("select an account again"),
        "{status}"
    );
}

#[tokio::test]
async fn token_calls_go_through_the_accounts_proxy_or_else_the_global_one() {
    let (global, own) = (CountingProxy::start().await, CountingProxy::start().await);
    let (global_url, own_url) = (global.url(), own.url());
    let app = spawn_claude_app_with(Options::default(), move |c| {
        c.oauth.proxy = claude_auth_router::config::ProxyUrl::new(&global_url);
        let mut second = account(2, None);
        second.proxy = claude_auth_router::config::ProxyUrl::new(&own_url);
        c.accounts = vec![account(1, None), second];
    })
    .await;
    app.fake.set_browser_mode(BrowserMode::AutoApprove);
    let first = app.create_ok().await;
    let second = app.create_ok().await;

    assert_eq!(app.select(&first.id, 1).await.status(), StatusCode::OK);
    let after_first = (global.forwarded(), own.forwarded());
    assert_eq!(app.select(&second.id, 2).await.status(), StatusCode::OK);
    let after_second = (global.forwarded(), own.forwarded());
    let refreshed = app.refresh(&second.id, &second.poll_token).await;

    assert_eq!(app.status_ok(&first).await["status"], "approved");
    assert_eq!(
        after_first,
        (1, 0),
        "account 1 has no proxy: the global one"
    );
    assert_eq!(after_second, (1, 1), "account 2's own proxy wins");
    assert_eq!(refreshed.status(), StatusCode::OK);
    assert_eq!(
        (global.forwarded(), own.forwarded()),
        (1, 2),
        "refresh goes through the approving account's proxy"
    );
}

#[tokio::test]
async fn the_claude_preset_sends_claude_codes_user_agent_to_the_token_endpoint() {
    let app = claude_app().await;
    let created = app.create_ok().await;
    let redirect = provider_redirect(&app, &created, 1).await;

    let page = app.get(&redirect).await;

    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(app.status_ok(&created).await["status"], "approved");
    assert_eq!(
        app.fake.token_user_agents(),
        [claude_auth_router::config::claude::USER_AGENT]
    );
}

/// Anthropic's token endpoint rate-limits clients it does not recognise: with any other
/// `oauth.user_agent`, the exchange is answered 429, and the request ends in a retryable
/// error rather than as a refused code.
#[tokio::test]
async fn another_user_agent_is_answered_429_by_the_claude_token_endpoint() {
    let app = spawn_claude_app_with(Options::default(), |c| {
        c.oauth.user_agent = "claude-auth-router/0.1.0".into();
    })
    .await;
    let created = app.create_ok().await;
    let redirect = provider_redirect(&app, &created, 1).await;

    let page = app.get(&redirect).await;

    assert_error(page, StatusCode::BAD_GATEWAY, "exchange_failed").await;
    let status = app.status_ok(&created).await;
    assert_eq!(status["status"], "error");
    assert!(
        status["error"].as_str().unwrap().contains("429"),
        "{status}"
    );
    assert_eq!(app.fake.token_user_agents(), ["claude-auth-router/0.1.0"]);
}

#[tokio::test]
async fn each_account_logs_in_at_its_own_authorize_url_a_console_account_at_the_consoles() {
    let fake_sso = "http://127.0.0.1:9/sso/authorize";
    let app = spawn_claude_app_with(Options::default(), move |c| {
        c.accounts = vec![
            account(1, None),
            claude_auth_router::config::Account {
                kind: "console".into(),
                ..account(2, None)
            },
            claude_auth_router::config::Account {
                auth_url: Some(fake_sso.into()),
                ..account(3, None)
            },
        ];
    })
    .await;
    let mut opened = Vec::new();
    for id in 1..=3 {
        let created = app.create_ok().await;
        opened.push(app.select_and_capture(&created.id, id).await);
    }

    assert!(opened[0].starts_with(&app.fake.auth_url()), "{}", opened[0]);
    assert!(
        opened[1].starts_with(claude_auth_router::config::claude::CONSOLE_AUTH_URL),
        "{}",
        opened[1]
    );
    assert!(opened[2].starts_with(fake_sso), "{}", opened[2]);
    for url in &opened {
        assert!(query_param(url, "code_challenge").is_some(), "{url}");
    }
}

/// A Claude refresh token dies a fixed time after the login, and refreshing does not move
/// that: the deadline the exchange stored is the one every later answer carries, even when
/// the refresh answer names a later one.
#[tokio::test]
async fn the_refresh_deadline_comes_from_the_exchange_and_a_refresh_never_moves_it() {
    let app = claude_app().await;
    let before = chrono::Utc::now();
    let created = app.approved(1).await;

    let status = app.status_ok(&created).await;
    let deadline = time_of(&status["refresh_expires_at"]);
    assert_eq!(
        status["token"]["refresh_expires_at"],
        status["refresh_expires_at"]
    );
    let lifetime = chrono::Duration::seconds(fake_upstream::CLAUDE_REFRESH_TOKEN_LIFETIME as i64);
    assert!(
        deadline >= before + lifetime && deadline <= chrono::Utc::now() + lifetime,
        "{deadline}"
    );

    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let refreshed = app.refresh_ok(&created).await;
    assert_eq!(
        time_of(&refreshed["refresh_expires_at"]),
        deadline,
        "{refreshed}"
    );
    let status = app.status_ok(&created).await;
    assert_eq!(time_of(&status["refresh_expires_at"]), deadline);
}

//! The console's HTTP side: assets, sessions, CSRF. The browser test drives the page itself.

use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, SET_COOKIE, X_FRAME_OPTIONS};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_error, spawn_app, spawn_app_with, two_accounts, TestApp, ADMIN_TOKEN};

/// Signs in; returns (cookie header value, csrf token, the Set-Cookie line).
async fn sign_in(app: &TestApp) -> (String, String, String) {
    let response = app
        .http
        .post(app.url("/admin/session"))
        .json(&json!({"token": ADMIN_TOKEN}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let pair = set_cookie.split(';').next().unwrap().to_owned();
    (
        pair,
        body["csrf_token"].as_str().unwrap().to_owned(),
        set_cookie,
    )
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_from_the_binary_with_a_strict_policy() {
    let app = spawn_app().await;
    for (path, kind) in [
        ("/admin", "text/html"),
        ("/admin/app.js", "text/javascript"),
        ("/admin/app.css", "text/css"),
    ] {
        let response = app.get(&app.url(path)).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(kind));
        let csp = response.headers()[CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert_eq!(response.headers()[X_FRAME_OPTIONS], "DENY");
        let body = response.text().await.unwrap();
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{path} loads nothing from another host"
        );
    }
}

#[tokio::test]
async fn signing_in_sets_a_strict_http_only_session_cookie_and_stores_only_its_hash() {
    let app = spawn_app().await;

    let (cookie, csrf, set_cookie) = sign_in(&app).await;

    assert!(
        set_cookie.contains("HttpOnly")
            && set_cookie.contains("SameSite=Strict")
            && set_cookie.contains("Path=/")
    );
    assert!(!set_cookie.contains("Secure"), "plain http deployment");
    let value = cookie.split_once('=').unwrap().1;
    let pool = app.sql_pool().await;
    let stored: Vec<u8> = sqlx::query_scalar("SELECT token_hash FROM admin_sessions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, claude_auth_router::domain::secret::hash(value));
    let session: Value = app
        .http
        .get(app.url("/admin/session"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["csrf_token"], csrf.as_str());
}

#[tokio::test]
async fn a_wrong_admin_token_gets_no_session() {
    let app = spawn_app().await;

    let response = app
        .http
        .post(app.url("/admin/session"))
        .json(&json!({"token": "guess"}))
        .send()
        .await
        .unwrap();

    assert!(response.headers().get(SET_COOKIE).is_none());
    assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_eq!(app.count("admin_sessions").await, 0);
    let no_session = app.get(&app.url("/admin/session")).await;
    assert_error(no_session, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn a_session_can_read_but_changes_need_its_csrf_token() {
    let app = spawn_app().await;
    let created = app.create_ok().await;
    let (cookie, csrf, _) = sign_in(&app).await;
    let deny = format!("/v1/token-requests/{}/deny", created.id);

    let listed = app
        .http
        .get(app.url("/v1/token-requests"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    let without = app
        .http
        .post(app.url(&deny))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    let wrong = app
        .http
        .post(app.url(&deny))
        .header(COOKIE, &cookie)
        .header("x-csrf-token", "nope")
        .send()
        .await
        .unwrap();

    assert_eq!(listed.status(), StatusCode::OK);
    assert_error(without, StatusCode::FORBIDDEN, "forbidden").await;
    assert_error(wrong, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(app.db_status(&created.id).await, "pending");
    let right = app
        .http
        .post(app.url(&deny))
        .header(COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK);
}

#[tokio::test]
async fn signing_out_ends_the_session() {
    let app = spawn_app().await;
    let (cookie, csrf, _) = sign_in(&app).await;

    let out = app
        .http
        .delete(app.url("/admin/session"))
        .header(COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();

    assert_eq!(out.status(), StatusCode::OK);
    assert!(out.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let after = app
        .http
        .get(app.url("/admin/overview"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_error(after, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_eq!(app.count("admin_sessions").await, 0);
}

#[tokio::test]
async fn the_overview_lists_open_requests_oldest_first_and_recent_ones_newest_first() {
    let app = spawn_app_with(|c| c.accounts = two_accounts()).await;
    let first = app.create_ok().await;
    let second = app.create_ok().await;
    let done = app.create_ok().await;
    app.deny(&done.id).await;
    let (cookie, _, _) = sign_in(&app).await;

    let overview: Value = app
        .http
        .get(app.url("/admin/overview"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session: Value = app
        .http
        .get(app.url("/admin/session"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let open: Vec<&str> = overview["open"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(open, [first.id.as_str(), second.id.as_str()]);
    assert_eq!(overview["recent"][0]["request_id"], done.id.as_str());
    assert_eq!(overview["recent"][0]["status"], "denied");
    assert_eq!(
        session["accounts"],
        json!([
            {"id": 1, "label": "primary", "email": null},
            {"id": 2, "label": "backup", "email": null}
        ])
    );
    assert!(!overview.to_string().contains(&first.poll_token));
}

async fn sign_in_with(app: &TestApp, token: &str) -> reqwest::Response {
    app.http
        .post(app.url("/admin/session"))
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn failed_sign_ins_are_throttled_per_address_with_429_and_retry_after() {
    let app = spawn_app().await;
    for _ in 0..10 {
        let refused = sign_in_with(&app, "a-wrong-guess-of-the-admin-token").await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    }

    let throttled = sign_in_with(&app, "another-wrong-guess").await;
    let even_right = sign_in_with(&app, ADMIN_TOKEN).await;

    let retry_after: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_error(throttled, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_error(even_right, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(app.count("admin_sessions").await, 0);
}

#[tokio::test]
async fn successful_sign_ins_spend_nothing_of_the_failure_budget() {
    let app = spawn_app().await;
    for _ in 0..15 {
        assert_eq!(
            sign_in_with(&app, ADMIN_TOKEN).await.status(),
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn a_new_admin_token_ends_every_console_session_made_with_the_old_one() {
    let mut app = spawn_app().await;
    let (cookie, _, _) = sign_in(&app).await;
    let session = |app: &TestApp| {
        app.http
            .get(app.url("/admin/session"))
            .header(COOKIE, cookie.clone())
            .send()
    };
    assert_eq!(session(&app).await.unwrap().status(), StatusCode::OK);

    app.restart().await;
    assert_eq!(
        session(&app).await.unwrap().status(),
        StatusCode::OK,
        "the same token keeps the session across a restart"
    );
    app.restart_with(|c| {
        c.admin.token = secrecy::SecretString::from("a-rotated-admin-token-0123456789abcdef")
    })
    .await
    .unwrap();

    assert_error(
        session(&app).await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let listing = app
        .http
        .get(app.url("/v1/token-requests"))
        .header(COOKIE, cookie.clone())
        .send()
        .await
        .unwrap();
    assert_error(listing, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

/// The cookie's `Secure` follows how operators reach the console, not where the provider
/// redirects to.
#[tokio::test]
async fn the_session_cookie_is_secure_behind_https_and_not_for_an_https_redirect_uri_alone() {
    let set_cookie =
        |response: &reqwest::Response| response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    let https_redirect_only = spawn_app_with(|c| {
        c.oauth.redirect_uri = "https://router.example/oauth/callback".into();
    })
    .await;
    let (_, _, cookie) = sign_in(&https_redirect_only).await;
    assert!(!cookie.contains("Secure"), "{cookie}");

    let public_https =
        spawn_app_with(|c| c.admin.public_url = "https://router.example".into()).await;
    let (_, _, cookie) = sign_in(&public_https).await;
    assert!(cookie.contains("; Secure"), "{cookie}");

    let proxied = spawn_app_with(|c| c.limits.trusted_proxies = vec!["127.0.0.1/32".into()]).await;
    let through_proxy = |proto: &'static str| {
        proxied
            .http
            .post(proxied.url("/admin/session"))
            .header("x-forwarded-proto", proto)
            .json(&json!({"token": ADMIN_TOKEN}))
            .send()
    };
    let https = through_proxy("https").await.unwrap();
    let http = through_proxy("http").await.unwrap();
    assert!(set_cookie(&https).contains("; Secure"));
    assert!(!set_cookie(&http).contains("Secure"));

    let untrusted = spawn_app().await;
    let claimed = untrusted
        .http
        .post(untrusted.url("/admin/session"))
        .header("x-forwarded-proto", "https")
        .json(&json!({"token": ADMIN_TOKEN}))
        .send()
        .await
        .unwrap();
    assert!(
        !set_cookie(&claimed).contains("Secure"),
        "the header counts only from a trusted proxy"
    );
}

#[tokio::test]
async fn the_stored_session_binding_is_no_plain_hash_of_the_admin_token() {
    let app = spawn_app().await;
    let (cookie, _, _) = sign_in(&app).await;

    let pool = app.sql_pool().await;
    let stored: Vec<u8> = sqlx::query_scalar("SELECT admin_token_hash FROM admin_sessions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 32);
    assert_ne!(
        stored,
        claude_auth_router::domain::secret::hash(ADMIN_TOKEN)
    );
    let session = app
        .http
        .get(app.url("/admin/session"))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        session.status(),
        StatusCode::OK,
        "and it still finds the session"
    );
}

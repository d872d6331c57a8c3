//! The whole flow, as the README walkthrough runs it.

use fake_upstream::{BrowserMode, Options};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{query_param, spawn_app_with, spawn_app_with_options};

#[tokio::test]
async fn the_full_flow_hands_the_providers_token_to_the_polling_client() {
    let app = spawn_app_with(|c| {
        c.oauth.default_scopes = vec!["user:inference".into(), "user:profile".into()];
        c.oauth
            .extra_auth_params
            .insert("code".into(), "true".into());
    })
    .await;
    app.fake.set_browser_mode(BrowserMode::AutoApprove);
    let created = app.create_ok().await;

    let response = app.select(&created.id, 3).await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "in_progress");
    assert_eq!(body["account_id"], 3);
    let opened = app.fake.opened();
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].account_id, 3);
    assert_eq!(
        opened[0].callback_status,
        Some(200),
        "the callback answered before open-auth did"
    );

    let url = &opened[0].auth_url;
    assert!(url.starts_with(&app.fake.auth_url()));
    assert_eq!(query_param(url, "response_type").as_deref(), Some("code"));
    assert_eq!(
        query_param(url, "client_id").as_deref(),
        Some("router-test-client")
    );
    assert_eq!(
        query_param(url, "redirect_uri"),
        Some(app.config.oauth.redirect_uri.clone())
    );
    assert_eq!(
        query_param(url, "scope").as_deref(),
        Some("user:inference user:profile")
    );
    assert_eq!(
        query_param(url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(
        query_param(url, "code").as_deref(),
        Some("true"),
        "extra_auth_params"
    );
    let state = query_param(url, "state").unwrap();
    assert!(state.len() >= 43);
    assert!(!state.contains(&created.id) && !created.id.contains(&state));

    let status = app.status_ok(&created).await;
    assert_eq!(status["status"], "approved");
    assert_eq!(status["account_id"], 3);
    let token = &status["token"];
    let secrets = app.fake.secrets();
    assert_eq!(token["access_token"], secrets.access_tokens[0].as_str());
    assert!(token["access_token"]
        .as_str()
        .unwrap()
        .starts_with("fake-at-3-"));
    assert_eq!(
        token["refresh_token"],
        serde_json::Value::Null,
        "the refresh token stays in the router (requests.share_refresh_token)"
    );
    assert_eq!(token["token_type"], "bearer");
    assert_eq!(token["scope"], "user:inference user:profile");
    let expires =
        chrono::DateTime::parse_from_rfc3339(token["expires_at"].as_str().unwrap()).unwrap();
    let in_secs = (expires.to_utc() - chrono::Utc::now()).num_seconds();
    assert!(
        (3500..=3600).contains(&in_secs),
        "expires_at from expires_in=3600, got {in_secs}"
    );

    let pool = app.sql_pool().await;
    let (verifier, state_hash): (Option<String>, Option<Vec<u8>>) =
        sqlx::query_as("SELECT pkce_verifier, state_hash FROM auth_requests WHERE id = ?")
            .bind(&created.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (verifier, state_hash),
        (None, None),
        "no flow secret outlives the flow"
    );
    assert_eq!(app.count("token_bundles").await, 1);
}

#[tokio::test]
async fn a_confidential_client_with_json_token_requests_completes_the_flow() {
    let options = Options {
        client_secret: Some("s3cret".into()),
        ..Options::default()
    };
    let app = spawn_app_with_options(options, |c| {
        c.oauth.client_secret = secrecy::SecretString::from("s3cret");
        c.oauth.token_request_format = claude_auth_router::config::TokenRequestFormat::Json;
    })
    .await;
    app.fake.set_browser_mode(BrowserMode::AutoApprove);
    let created = app.create_ok().await;

    assert_eq!(app.select(&created.id, 1).await.status(), StatusCode::OK);

    assert_eq!(app.status_ok(&created).await["status"], "approved");
}

#[tokio::test]
async fn a_wrong_client_secret_ends_the_request_in_error_with_502() {
    let options = Options {
        client_secret: Some("right".into()),
        ..Options::default()
    };
    let app = spawn_app_with_options(options, |c| {
        c.oauth.client_secret = secrecy::SecretString::from("wrong")
    })
    .await;
    let created = app.create_ok().await;
    let callback = app.callback_url_for(&created.id, 1).await;

    let response = app.get(&callback).await;

    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let status = app.status_ok(&created).await;
    assert_eq!(status["status"], "error");
    assert!(
        status["error"].as_str().unwrap().contains("invalid_client"),
        "{status}"
    );
}

#[tokio::test]
async fn the_callback_is_served_at_the_path_of_redirect_uri() {
    let app = spawn_app_with(|c| {
        c.oauth.redirect_uri = format!("http://localhost:{}/callback", c.bind_addr.port())
    })
    .await;
    let created = app.create_ok().await;

    let callback = app.callback_url_for(&created.id, 1).await;

    assert!(callback.starts_with(&format!("http://localhost:{}/callback?", app.addr.port())));
    let callback = callback.replace("localhost", "127.0.0.1");
    assert_eq!(app.get(&callback).await.status(), StatusCode::OK);
    assert_eq!(app.status_ok(&created).await["status"], "approved");
}

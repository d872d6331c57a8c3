use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{assert_error, spawn_app, spawn_app_with};

#[tokio::test]
async fn create_returns_201_and_stores_only_a_hash_of_the_poll_token() {
    let app = spawn_app_with(|c| c.requests.poll_interval_secs = 5).await;

    let response = app
        .create(json!({"client_name": "alice", "hostname": "laptop", "scopes": ["a", "b"]}))
        .await;

    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "pending");
    assert_eq!(body["poll_interval_secs"], 5);
    let poll_token = body["poll_token"].as_str().unwrap();
    assert!(poll_token.len() >= 22, "at least 128 bits");
    let id = body["request_id"].as_str().unwrap();
    let pool = app.sql_pool().await;
    let (status, scopes, hash): (String, String, Vec<u8>) =
        sqlx::query_as("SELECT status, scopes, poll_token_hash FROM auth_requests WHERE id = ?")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(status, "pending");
    assert_eq!(scopes, "a b");
    assert_eq!(hash, Sha256::digest(poll_token.as_bytes()).to_vec());
    let dump: String = sqlx::query_scalar(
        "SELECT group_concat(quote(poll_token_hash) || client_name || scopes) FROM auth_requests",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(!dump.contains(poll_token));
}

#[tokio::test]
async fn each_request_gets_its_own_poll_token() {
    let app = spawn_app().await;
    let a = app.create_ok().await;
    let b = app.create_ok().await;
    assert_ne!(a.poll_token, b.poll_token);
    assert_ne!(a.id, b.id);
}

#[tokio::test]
async fn missing_or_empty_scopes_mean_the_default_scopes() {
    let app = spawn_app_with(|c| c.oauth.default_scopes = vec!["user:inference".into()]).await;

    for body in [
        json!({"client_name": "a", "hostname": "h"}),
        json!({"client_name": "a", "hostname": "h", "scopes": []}),
    ] {
        let response = app.create(body).await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }

    let listed: Value = app.list("").await.json().await.unwrap();
    for r in listed["requests"].as_array().unwrap() {
        assert_eq!(r["scopes"], json!(["user:inference"]));
    }
}

#[tokio::test]
async fn create_returns_400_for_invalid_bodies_and_stores_nothing() {
    let app = spawn_app_with(|c| c.oauth.allowed_scopes = vec!["ok".into()]).await;
    let long = "x".repeat(254);
    let bodies = [
        json!({"client_name": "", "hostname": "h"}),
        json!({"client_name": "x".repeat(129), "hostname": "h"}),
        json!({"client_name": "a", "hostname": long}),
        json!({"client_name": "a", "hostname": ""}),
        json!({"client_name": "a\u{7}", "hostname": "h"}),
        json!({"client_name": "a", "hostname": "h", "scopes": ["has space"]}),
        json!({"client_name": "a", "hostname": "h", "scopes": ["not-allowed"]}),
        json!({"client_name": "a", "hostname": "h", "scopes": vec!["ok"; 33]}),
        json!({"client_name": "a", "hostname": "h", "scopes": "ok"}),
        json!({"client_name": 7, "hostname": "h"}),
        json!({"hostname": "h"}),
        json!({"client_name": "a", "hostname": "h", "extra": 1}),
        json!([1, 2]),
    ];
    for body in bodies {
        let response = app.create(body.clone()).await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
    let malformed = app
        .http
        .post(app.url("/v1/token-requests"))
        .header("content-type", "application/json")
        .body("{\"client_name\": ")
        .send()
        .await
        .unwrap();
    assert_error(malformed, StatusCode::BAD_REQUEST, "invalid_request").await;

    assert_eq!(app.count("auth_requests").await, 0);
}

#[tokio::test]
async fn create_returns_415_without_a_json_content_type() {
    let app = spawn_app().await;

    let response = app
        .http
        .post(app.url("/v1/token-requests"))
        .header("content-type", "text/plain")
        .body(r#"{"client_name": "a", "hostname": "h"}"#)
        .send()
        .await
        .unwrap();

    assert_error(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    assert_eq!(app.count("auth_requests").await, 0);
}

#[tokio::test]
async fn create_returns_413_for_a_body_over_64_kib() {
    let app = spawn_app().await;
    let body = json!({"client_name": "a", "hostname": "h", "padding": "x".repeat(70 * 1024)});

    let response = app.create(body).await;

    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    assert_eq!(app.count("auth_requests").await, 0);
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_in_the_api_error_format() {
    let app = spawn_app().await;

    assert_error(
        app.get(&app.url("/v2/nothing")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let put = app
        .http
        .put(app.url("/v1/token-requests"))
        .send()
        .await
        .unwrap();
    assert_error(put, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
}

#[tokio::test]
async fn healthz_answers_ok_when_the_database_answers() {
    let app = spawn_app().await;

    let response = app.get(&app.url("/healthz")).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
}

#[test]
fn the_admin_token_in_config_is_hidden_from_debug_output() {
    let mut config = claude_auth_router::Config::default();
    config.admin.token = secrecy::SecretString::from("very-secret-admin");
    config.oauth.client_secret = secrecy::SecretString::from("very-secret-client");
    let debug = format!("{config:?}");
    assert!(!debug.contains("very-secret-admin"));
    assert!(!debug.contains("very-secret-client"));
    assert_eq!(config.admin.token.expose_secret(), "very-secret-admin");
}

#[tokio::test]
async fn names_with_bidi_overrides_or_other_format_characters_are_refused_and_nothing_is_stored() {
    let app = crate::helpers::spawn_app().await;
    for (client_name, hostname) in [
        ("evil\u{202E}gnp", "host"),
        ("name", "host\u{200B}"),
        ("name", "a\u{2066}b"),
    ] {
        let response = app
            .http
            .post(app.url("/v1/token-requests"))
            .json(&serde_json::json!({"client_name": client_name, "hostname": hostname}))
            .send()
            .await
            .unwrap();
        crate::helpers::assert_error(
            response,
            reqwest::StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
    }
    assert_eq!(app.count("auth_requests").await, 0);
}

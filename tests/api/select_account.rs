use std::time::Duration;

use fake_upstream::BrowserMode;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_error, query_param, spawn_app, spawn_app_with, two_accounts};

/// The flow columns of a row, to compare before and after.
async fn flow_row(
    app: &crate::helpers::TestApp,
    id: &str,
) -> (String, Option<i64>, Option<Vec<u8>>, Option<String>, String) {
    let pool = app.sql_pool().await;
    let row = sqlx::query_as(
        "SELECT status, account_id, state_hash, pkce_verifier, updated_at FROM auth_requests WHERE id = ?",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    row
}

#[tokio::test]
async fn an_account_outside_the_configured_list_is_400_and_changes_nothing() {
    let app = spawn_app_with(|c| c.accounts = two_accounts()).await;
    let created = app.create_ok().await;

    assert_error(
        app.select(&created.id, 3).await,
        StatusCode::BAD_REQUEST,
        "unknown_account",
    )
    .await;

    assert_eq!(app.db_status(&created.id).await, "pending");
    assert!(app.fake.opened().is_empty());
    assert_eq!(app.select(&created.id, 2).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn select_account_validates_its_body_and_id() {
    let app = spawn_app().await;
    let created = app.create_ok().await;
    let path = format!("/v1/token-requests/{}/select-account", created.id);

    for body in [
        json!({}),
        json!({"account_id": -1}),
        json!({"account_id": "1"}),
        json!({"account_id": 4294967296u64}),
    ] {
        assert_error(
            app.admin_post(&path, body).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
    }
    assert_error(
        app.select("nope", 1).await,
        StatusCode::BAD_REQUEST,
        "invalid_request_id",
    )
    .await;
    assert_error(
        app.select("0b8f1f4e-7c1d-4e8b-9a53-2f2d3c4b5a69", 1).await,
        StatusCode::NOT_FOUND,
        "request_not_found",
    )
    .await;
    assert_eq!(app.db_status(&created.id).await, "pending");
}

#[tokio::test]
async fn selecting_again_issues_a_new_state_and_the_old_one_stops_working() {
    let app = spawn_app().await;
    let created = app.create_ok().await;
    let first_auth = app.select_and_capture(&created.id, 1).await;
    let first_callback = app.fake.authorize(&first_auth, 1, false).await;

    let second_auth = app.select_and_capture(&created.id, 2).await;

    assert_ne!(
        query_param(&first_auth, "state"),
        query_param(&second_auth, "state")
    );
    assert_ne!(
        query_param(&first_auth, "code_challenge"),
        query_param(&second_auth, "code_challenge")
    );
    assert_error(
        app.get(&first_callback).await,
        StatusCode::BAD_REQUEST,
        "invalid_callback",
    )
    .await;
    assert_eq!(
        app.fake.token_calls(),
        0,
        "a stale state never reaches the token endpoint"
    );
    assert_eq!(app.status_ok(&created).await["status"], "in_progress");

    let second_callback = app.fake.authorize(&second_auth, 2, false).await;
    assert_eq!(app.get(&second_callback).await.status(), StatusCode::OK);
    let status = app.status_ok(&created).await;
    assert_eq!(status["status"], "approved");
    assert_eq!(status["account_id"], 2);
}

#[tokio::test]
async fn a_failing_control_browser_answers_502_and_leaves_the_request_as_it_was() {
    let app = spawn_app().await;
    let created = app.create_ok().await;
    let before = flow_row(&app, &created.id).await;
    app.fake.set_browser_mode(BrowserMode::Fail);

    assert_error(
        app.select(&created.id, 1).await,
        StatusCode::BAD_GATEWAY,
        "control_browser_failed",
    )
    .await;

    assert_eq!(flow_row(&app, &created.id).await, before);
    assert_eq!(app.status_ok(&created).await["status"], "pending");
}

#[tokio::test]
async fn a_control_browser_timeout_answers_502_and_restores_the_previous_login() {
    let app = spawn_app_with(|c| c.control_browser.timeout_secs = 1).await;
    let created = app.create_ok().await;
    let first_auth = app.select_and_capture(&created.id, 1).await;
    let before = flow_row(&app, &created.id).await;
    app.fake
        .set_browser_mode(BrowserMode::Hang(Duration::from_secs(3)));

    let started = std::time::Instant::now();
    assert_error(
        app.select(&created.id, 2).await,
        StatusCode::BAD_GATEWAY,
        "control_browser_failed",
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "the timeout applied"
    );

    assert_eq!(
        flow_row(&app, &created.id).await,
        before,
        "status, account and state put back"
    );
    let first_callback = app.fake.authorize(&first_auth, 1, false).await;
    assert_eq!(
        app.get(&first_callback).await.status(),
        StatusCode::OK,
        "the previous state works again"
    );
    assert_eq!(app.status_ok(&created).await["account_id"], 1);
}

#[tokio::test]
async fn a_control_browser_that_is_down_answers_502() {
    let app = spawn_app_with(|c| c.control_browser.base_url = "http://127.0.0.1:9".into()).await;
    let created = app.create_ok().await;

    let body = assert_error(
        app.select(&created.id, 1).await,
        StatusCode::BAD_GATEWAY,
        "control_browser_failed",
    )
    .await;

    assert!(
        !body["message"].as_str().unwrap().contains("state="),
        "no URL in the message"
    );
    assert_eq!(app.db_status(&created.id).await, "pending");
}

#[tokio::test]
async fn selecting_an_account_for_a_finished_request_is_409() {
    let app = spawn_app().await;
    let created = app.create_ok().await;
    app.deny(&created.id).await;

    assert_error(
        app.select(&created.id, 1).await,
        StatusCode::CONFLICT,
        "invalid_status",
    )
    .await;

    assert!(app.fake.opened().is_empty());
}

use std::time::Duration;

use fake_upstream::TokenFault;
use reqwest::StatusCode;

use crate::helpers::{assert_error, query_param, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_callback_without_state_or_code_is_400_and_changes_nothing() {
    let app = spawn_app().await;
    let created = app.create_ok().await;
    let callback = app.callback_url_for(&created.id, 1).await;
    let state = query_param(&callback, "state").unwrap();
    let code = query_param(&callback, "code").unwrap();
    let path = app.url("/oauth/callback");

    for url in [
        path.clone(),
        format!("{path}?code={code}"),
        format!("{path}?state={state}"),
        format!("{path}?code=&state={state}"),
        format!("{path}?code={code}&state="),
    ] {
        assert_error(
            app.get(&url).await,
            StatusCode::BAD_REQUEST,
            "invalid_callback",
        )
        .await;
    }
    assert_eq!(app.fake.token_calls(), 0);
    assert_eq!(app.db_status(&created.id).await, "in_progress");

    assert_eq!(
        app.get(&callback).await.status(),
        StatusCode::OK,
        "the state was not used up"
    );
}

#[tokio::test]
async fn a_callback_with_an_unknown_state_is_400() {
    let app = spawn_app().await;
    let created = app.create_ok().await;
    app.select_and_capture(&created.id, 1).await;

    let response = app
        .get(&app.url("/oauth/callback?code=abc&state=forged"))
        .await;

    assert_error(response, StatusCode::BAD_REQUEST, "invalid_callback").await;
    assert_eq!(app.fake.token_calls(), 0);
    assert_eq!(app.db_status(&created.id).await, "in_progress");
}

#[tokio::test]
async fn a_replayed_callback_is_400_and_never_exchanges_twice() {
    let app = spawn_app().await;
    let created = app.create_ok().await;
    let callback = app.callback_url_for(&created.id, 1).await;
    assert_eq!(app.get(&callback).await.status(), StatusCode::OK);
    let token = app.status_ok(&created).await["token"].clone();

    assert_error(
        app.get(&callback).await,
        StatusCode::BAD_REQUEST,
        "invalid_callback",
    )
    .await;

    assert_eq!(app.fake.token_calls(), 1);
    assert_eq!(app.status_ok(&created).await["token"], token);
}

#[tokio::test]
async fn access_denied_from_the_provider_denies_the_request() {
    let app = spawn_app().await;
    let created = app.create_ok().await;
    let auth = app.select_and_capture(&created.id, 1).await;
    let callback = app.fake.authorize(&auth, 1, true).await;

    let response = app.get(&callback).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("denied"));
    let status = app.status_ok(&created).await;
    assert_eq!(status["status"], "denied");
    assert_eq!(status["token"], serde_json::Value::Null);
    assert_eq!(app.fake.token_calls(), 0);
    assert_error(
        app.get(&callback).await,
        StatusCode::BAD_REQUEST,
        "invalid_callback",
    )
    .await;
}

#[tokio::test]
async fn another_provider_error_ends_the_request_in_error_with_its_description() {
    let app = spawn_app().await;
    let created = app.create_ok().await;
    let auth = app.select_and_capture(&created.id, 1).await;
    let state = query_param(&auth, "state").unwrap();
    let url = app.url(&format!(
        "/oauth/callback?error=server_error&error_description=The+provider+fell+over&state={state}"
    ));

    assert_eq!(app.get(&url).await.status(), StatusCode::OK);

    let status = app.status_ok(&created).await;
    assert_eq!(status["status"], "error");
    assert_eq!(status["error"], "server_error: The provider fell over");
}

#[tokio::test]
async fn a_failed_exchange_ends_the_request_in_error_with_502() {
    for (fault, expect) in [
        (TokenFault::ServerError, "500"),
        (TokenFault::NotJson, "not a token response"),
        (TokenFault::Delay(Duration::from_secs(4)), "timed out"),
    ] {
        let app = spawn_app().await;
        let created = app.create_ok().await;
        let callback = app.callback_url_for(&created.id, 1).await;
        app.fake.set_token_fault(Some(fault));

        let body = assert_error(
            app.get(&callback).await,
            StatusCode::BAD_GATEWAY,
            "exchange_failed",
        )
        .await;

        let status = app.status_ok(&created).await;
        assert_eq!(status["status"], "error", "{fault:?}");
        let error = status["error"].as_str().unwrap();
        assert!(error.contains(expect), "{fault:?}: {error}");
        assert!(body["message"].as_str().unwrap().contains(expect));
        assert_eq!(status["token"], serde_json::Value::Null);
        assert_eq!(app.count("token_bundles").await, 0);
    }
}

#[tokio::test]
async fn a_request_that_expired_is_never_approved() {
    let app = spawn_app_with(|c| {
        c.requests.ttl_secs = 1;
        c.requests.poll_interval_secs = 1;
    })
    .await;
    let created = app.create_ok().await;
    let callback = app.callback_url_for(&created.id, 1).await;

    tokio::time::sleep(Duration::from_millis(1100)).await;

    assert_error(
        app.get(&callback).await,
        StatusCode::BAD_REQUEST,
        "invalid_callback",
    )
    .await;
    assert_eq!(app.fake.token_calls(), 0);
    assert_eq!(app.status_ok(&created).await["status"], "expired");
}

#[tokio::test]
async fn a_request_that_expires_during_the_exchange_is_not_approved() {
    let app = spawn_app_with(|c| {
        c.requests.ttl_secs = 2;
        c.requests.poll_interval_secs = 1;
        c.oauth.timeout_secs = 5;
    })
    .await;
    let created = app.create_ok().await;
    let callback = app.callback_url_for(&created.id, 1).await;
    app.fake
        .set_token_fault(Some(TokenFault::Delay(Duration::from_millis(2500))));

    assert_error(
        app.get(&callback).await,
        StatusCode::CONFLICT,
        "invalid_status",
    )
    .await;

    assert_eq!(app.fake.token_calls(), 1);
    assert_eq!(app.status_ok(&created).await["status"], "expired");
    assert_eq!(app.count("token_bundles").await, 0);
}

#[tokio::test]
async fn a_deny_during_the_exchange_wins_and_the_tokens_are_dropped() {
    let app = spawn_app().await;
    let created = app.create_ok().await;
    let callback = app.callback_url_for(&created.id, 1).await;
    app.fake
        .set_token_fault(Some(TokenFault::Delay(Duration::from_millis(500))));

    let (callback_response, deny_response) = tokio::join!(app.get(&callback), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        app.deny(&created.id).await
    });

    assert_eq!(deny_response.status(), StatusCode::OK);
    assert_error(callback_response, StatusCode::CONFLICT, "invalid_status").await;
    assert_eq!(app.status_ok(&created).await["status"], "denied");
    assert_eq!(app.count("token_bundles").await, 0);
}

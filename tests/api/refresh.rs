use std::time::Duration;

use fake_upstream::{Options, TokenFault};
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{
    assert_error, spawn_app, spawn_app_with, spawn_app_with_options, ADMIN_TOKEN,
};

/// Tests that read the refresh token from answers run with `share_refresh_token`, the v1
/// behaviour; by default no answer carries it.
async fn sharing_app() -> crate::helpers::TestApp {
    spawn_app_with(|c| c.requests.share_refresh_token = true).await
}

#[tokio::test]
async fn refresh_returns_new_tokens_and_the_status_then_shows_them() {
    let app = sharing_app().await;
    let created = app.approved(1).await;
    let before = app.status_ok(&created).await["token"].clone();

    let response = app.refresh(&created.id, &created.poll_token).await;

    assert_eq!(response.status(), StatusCode::OK);
    let token: Value = response.json().await.unwrap();
    assert_ne!(token["access_token"], before["access_token"]);
    assert_ne!(
        token["refresh_token"], before["refresh_token"],
        "the provider rotated it"
    );
    assert_eq!(
        token["access_token"],
        app.fake.secrets().access_tokens[1].as_str()
    );
    assert_eq!(token["scope"], before["scope"]);
    assert_eq!(app.status_ok(&created).await["token"], token);
    assert_eq!(app.fake.token_calls(), 2);
}

#[tokio::test]
async fn concurrent_refreshes_make_one_upstream_call_and_all_get_the_same_token() {
    let app = spawn_app().await;
    let created = app.approved(1).await;
    let calls_before = app.fake.token_calls();
    app.fake
        .set_token_fault(Some(TokenFault::Delay(Duration::from_millis(300))));

    let responses = join_all((0..16).map(|_| app.refresh(&created.id, &created.poll_token))).await;

    let mut tokens = Vec::new();
    for r in responses {
        assert_eq!(r.status(), StatusCode::OK);
        tokens.push(r.json::<Value>().await.unwrap()["access_token"].clone());
    }
    assert_eq!(
        app.fake.token_calls() - calls_before,
        1,
        "one upstream call"
    );
    assert!(tokens.iter().all(|t| *t == tokens[0]), "{tokens:?}");
    assert_eq!(
        app.status_ok(&created).await["token"]["access_token"],
        tokens[0]
    );
}

#[tokio::test]
async fn sequential_refreshes_each_rotate_and_never_roll_back() {
    let app = sharing_app().await;
    let created = app.approved(1).await;

    let mut seen = Vec::new();
    for _ in 0..3 {
        let token = app.refresh_ok(&created).await;
        seen.push(token["refresh_token"].as_str().unwrap().to_owned());
    }

    let issued = app.fake.secrets().refresh_tokens;
    assert_eq!(
        seen,
        issued[1..],
        "each refresh used and stored the newest refresh token"
    );
}

#[tokio::test]
async fn a_rejected_refresh_token_answers_409_and_is_not_sent_again() {
    let app = spawn_app().await;
    let created = app.approved(1).await;
    let token_before = app.status_ok(&created).await["token"].clone();
    app.fake.revoke_refresh_tokens();
    let calls = app.fake.token_calls();

    let first = assert_error(
        app.refresh(&created.id, &created.poll_token).await,
        StatusCode::CONFLICT,
        "refresh_rejected",
    )
    .await;
    let second = app.refresh(&created.id, &created.poll_token).await;

    assert!(
        first["message"].as_str().unwrap().contains("invalid_grant"),
        "{first}"
    );
    assert_error(second, StatusCode::CONFLICT, "refresh_rejected").await;
    assert_eq!(
        app.fake.token_calls(),
        calls + 1,
        "the rejected token was not tried again"
    );
    let status = app.status_ok(&created).await;
    assert_eq!(status["status"], "approved");
    assert_eq!(status["token"], token_before);
}

#[tokio::test]
async fn an_upstream_failure_answers_502_and_changes_nothing() {
    for fault in [
        TokenFault::ServerError,
        TokenFault::NotJson,
        TokenFault::Delay(Duration::from_secs(4)),
    ] {
        let app = spawn_app().await;
        let created = app.approved(1).await;
        let token_before = app.status_ok(&created).await["token"].clone();
        app.fake.set_token_fault(Some(fault));

        assert_error(
            app.refresh(&created.id, &created.poll_token).await,
            StatusCode::BAD_GATEWAY,
            "upstream_failed",
        )
        .await;

        assert_eq!(
            app.status_ok(&created).await["token"],
            token_before,
            "{fault:?}"
        );
        app.fake.set_token_fault(None);
        if fault != TokenFault::Delay(Duration::from_secs(4)) {
            // The provider never saw a valid request, so the same refresh token still works.
            assert_eq!(
                app.refresh(&created.id, &created.poll_token).await.status(),
                StatusCode::OK,
                "{fault:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_provider_that_sends_no_new_refresh_token_keeps_the_old_one_working() {
    let app = spawn_app_with_options(
        Options {
            no_rotation: true,
            ..Options::default()
        },
        |_| {},
    )
    .await;
    let created = app.approved(1).await;
    let original = app.status_ok(&created).await["token"]["refresh_token"].clone();

    let first = app.refresh_ok(&created).await;
    let second = app.refresh(&created.id, &created.poll_token).await;

    assert_eq!(first["refresh_token"], original);
    assert_eq!(second.status(), StatusCode::OK);
}

#[tokio::test]
async fn refresh_needs_an_approved_request_and_its_own_poll_token() {
    let app = spawn_app().await;
    let pending = app.create_ok().await;
    let approved = app.approved(1).await;

    assert_error(
        app.refresh(&pending.id, &pending.poll_token).await,
        StatusCode::CONFLICT,
        "invalid_status",
    )
    .await;
    assert_error(
        app.refresh(&approved.id, &pending.poll_token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    assert_error(
        app.refresh(&approved.id, ADMIN_TOKEN).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    assert_error(
        app.refresh("nope", ADMIN_TOKEN).await,
        StatusCode::BAD_REQUEST,
        "invalid_request_id",
    )
    .await;
    assert_eq!(app.fake.token_calls(), 1, "only the approval's exchange");
}

#[tokio::test]
async fn by_default_no_answer_carries_the_refresh_token_and_sharing_restores_it() {
    let app = spawn_app().await;
    let created = app.approved(1).await;

    let status = app.status_ok(&created).await;
    let refreshed = app.refresh_ok(&created).await;

    assert_eq!(status["token"]["refresh_token"], Value::Null);
    assert_eq!(refreshed["refresh_token"], Value::Null);
    assert!(refreshed["access_token"].is_string());
    let sharing = sharing_app().await;
    let created = sharing.approved(1).await;
    assert_eq!(
        sharing.status_ok(&created).await["token"]["refresh_token"],
        sharing.fake.secrets().refresh_tokens[0].as_str()
    );
}

#[tokio::test]
async fn without_a_deadline_from_the_provider_the_refresh_deadline_is_null_or_the_configured_lifetime(
) {
    let unknown = spawn_app().await;
    let created = unknown.approved(1).await;
    let status = unknown.status_ok(&created).await;
    assert!(status["refresh_expires_at"].is_null(), "{status}");
    assert!(status["token"]["refresh_expires_at"].is_null(), "{status}");

    let configured = spawn_app_with(|c| c.oauth.refresh_token_lifetime_secs = 86_400).await;
    let before = chrono::Utc::now();
    let created = configured.approved(1).await;
    let status = configured.status_ok(&created).await;
    let deadline = crate::helpers::time_of(&status["refresh_expires_at"]);
    let day = chrono::Duration::days(1);
    assert!(
        deadline >= before + day && deadline <= chrono::Utc::now() + day,
        "{status}"
    );
}

//! `GET …/status?wait=N`: an answer held until the request changes, woken by the commit.

use std::time::{Duration, Instant};

use fake_upstream::BrowserMode;
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_error, spawn_app, spawn_app_with, Created, TestApp};

/// A status poll with `?wait=`: its answer and when it came.
async fn wait_poll(app: &TestApp, created: &Created, wait: &str) -> (reqwest::Response, Instant) {
    let response = app
        .http
        .get(app.url(&format!(
            "/v1/token-requests/{}/status?wait={wait}",
            created.id
        )))
        .bearer_auth(&created.poll_token)
        .send()
        .await
        .unwrap();
    (response, Instant::now())
}

/// Starts a long poll of `created` in the background.
fn waiting(
    app: &TestApp,
    created: &Created,
    wait: u64,
) -> tokio::task::JoinHandle<(StatusCode, Value, Instant)> {
    let (http, url, token) = (
        app.http.clone(),
        app.url(&format!(
            "/v1/token-requests/{}/status?wait={wait}",
            created.id
        )),
        created.poll_token.clone(),
    );
    tokio::spawn(async move {
        let response = http.get(url).bearer_auth(token).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap(), Instant::now())
    })
}

/// Waits until the router counts `n` long-poll waiters (read from `/metrics`).
async fn until_waiters(app: &TestApp, n: usize) {
    let line = format!("auth_router_long_poll_waiters {n}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = app.get(&app.url("/metrics")).await.text().await.unwrap();
        if text.lines().any(|l| l == line) {
            return;
        }
        assert!(Instant::now() < deadline, "never {n} waiters:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts that a waiter answered `status` within 100 ms of `changed_at`.
async fn woke_with(
    waiter: tokio::task::JoinHandle<(StatusCode, Value, Instant)>,
    changed_at: Instant,
    status: &str,
) {
    let (code, body, answered_at) = waiter.await.unwrap();
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["status"], status, "{body}");
    let late = answered_at.saturating_duration_since(changed_at);
    assert!(
        late < Duration::from_millis(100),
        "answered {late:?} after the change"
    );
}

#[tokio::test]
async fn a_long_poll_wakes_at_once_on_an_approval() {
    let app = spawn_app().await;
    let created = app.create_ok().await;
    let callback = app.callback_url_for(&created.id, 1).await;
    let waiter = waiting(&app, &created, 20);
    until_waiters(&app, 1).await;

    assert_eq!(app.get(&callback).await.status(), StatusCode::OK);
    let approved_at = Instant::now();

    woke_with(waiter, approved_at, "approved").await;
}

#[tokio::test]
async fn a_long_poll_wakes_at_once_on_an_operators_select_a_deny_and_a_cancel() {
    let app = spawn_app().await;
    for action in ["select", "deny", "cancel"] {
        let created = app.create_ok().await;
        let waiter = waiting(&app, &created, 20);
        until_waiters(&app, 1).await;

        let answer = match action {
            "select" => app.select(&created.id, 1).await,
            "deny" => app.deny(&created.id).await,
            _ => app.cancel(&created.id, &created.poll_token).await,
        };
        let changed_at = Instant::now();

        assert_eq!(answer.status(), StatusCode::OK, "{action}");
        let expected = match action {
            "select" => "in_progress",
            "deny" => "denied",
            _ => "cancelled",
        };
        woke_with(waiter, changed_at, expected).await;
        until_waiters(&app, 0).await;
    }
}

#[tokio::test]
async fn a_long_poll_answers_expired_when_the_deadline_passes_without_the_reaper() {
    let app = spawn_app_with(|c| c.requests.ttl_secs = 2).await;
    let created = app.create_ok().await;
    let expires_at: chrono::DateTime<chrono::Utc> = app.status_ok(&created).await["expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    let (response, answered_at) = wait_poll(&app, &created, "20").await;

    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "expired");
    let now = chrono::Utc::now();
    assert!(answered_at.elapsed() < Duration::from_millis(50));
    assert!(now >= expires_at, "not before the deadline");
    assert!(
        now - expires_at < chrono::Duration::seconds(1),
        "{:?}",
        now - expires_at
    );
}

#[tokio::test]
async fn a_long_poll_returns_after_n_seconds_when_nothing_happens() {
    let app = spawn_app().await;
    let created = app.create_ok().await;
    let started = Instant::now();

    let (response, answered_at) = wait_poll(&app, &created, "1").await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "pending");
    let waited = answered_at - started;
    assert!(
        waited >= Duration::from_millis(950) && waited < Duration::from_millis(1_500),
        "{waited:?}"
    );
    let (terminal, _) = wait_poll(&app, &app.approved(1).await, "20").await;
    assert_eq!(
        terminal.status(),
        StatusCode::OK,
        "a finished request answers at once"
    );
}

#[tokio::test]
async fn two_hundred_waiters_on_one_request_all_wake() {
    let app = spawn_app_with(|c| c.limits.max_waiters_per_request = 200).await;
    let created = app.create_ok().await;
    let waiters: Vec<_> = (0..200).map(|_| waiting(&app, &created, 20)).collect();
    until_waiters(&app, 200).await;

    assert_eq!(app.deny(&created.id).await.status(), StatusCode::OK);
    let denied_at = Instant::now();

    for (code, body, at) in join_all(waiters).await.into_iter().map(Result::unwrap) {
        assert_eq!(code, StatusCode::OK);
        assert_eq!(body["status"], "denied");
        assert!(at.saturating_duration_since(denied_at) < Duration::from_secs(1));
    }
    until_waiters(&app, 0).await;
}

#[tokio::test]
async fn a_client_that_hangs_up_frees_its_waiter_at_once() {
    let app = spawn_app().await;
    let created = app.create_ok().await;
    let waiter = waiting(&app, &created, 20);
    until_waiters(&app, 1).await;

    waiter.abort();

    until_waiters(&app, 0).await;
}

/// A poll asking to wait 20 s, which must be answered 200 at once (its wait skipped).
async fn answered_at_once(app: &TestApp, created: &Created) -> reqwest::Response {
    let started = Instant::now();
    let (response, answered_at) = wait_poll(app, created, "20").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        answered_at - started < Duration::from_millis(500),
        "not held"
    );
    response
}

#[tokio::test]
async fn past_max_waiters_a_wait_is_answered_at_once_with_a_header_saying_so() {
    let app = spawn_app_with(|c| c.limits.max_waiters = 2).await;
    let created = app.create_ok().await;
    let _held = [waiting(&app, &created, 20), waiting(&app, &created, 20)];
    until_waiters(&app, 2).await;

    let response = answered_at_once(&app, &created).await;

    assert!(
        response.headers()["x-auth-router-wait"]
            .to_str()
            .unwrap()
            .contains("max_waiters"),
        "{:?}",
        response.headers()
    );
}

#[tokio::test]
async fn past_max_waiters_per_request_one_request_cannot_take_every_waiter_slot() {
    let app = spawn_app_with(|c| c.limits.max_waiters_per_request = 4).await;
    let created = app.create_ok().await;
    let other = app.create_ok().await;
    let _held: Vec<_> = (0..4).map(|_| waiting(&app, &created, 20)).collect();
    until_waiters(&app, 4).await;

    let response = answered_at_once(&app, &created).await;

    assert_eq!(response.headers()["x-auth-router-wait"], "skipped");
    let _other = waiting(&app, &other, 20);
    until_waiters(&app, 5).await;
}

#[tokio::test]
async fn a_client_long_polling_back_to_back_is_never_told_to_slow_down() {
    let app = spawn_app_with(|c| c.requests.poll_interval_secs = 1).await;
    let created = app.create_ok().await;

    for _ in 0..3 {
        let (response, _) = wait_poll(&app, &created, "1").await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    let (first_short, _) = wait_poll(&app, &created, "0").await;
    let (second_short, _) = wait_poll(&app, &created, "0").await;
    assert_eq!(first_short.status(), StatusCode::OK);
    assert_error(second_short, StatusCode::TOO_MANY_REQUESTS, "slow_down").await;
}

#[tokio::test]
async fn a_wait_that_is_not_a_number_or_too_long_is_400_and_the_body_is_as_before() {
    let app = spawn_app_with(|c| c.requests.max_wait_secs = 25).await;
    let created = app.create_ok().await;

    for bad in ["26", "61", "abc", "-1", "1.5"] {
        let (response, _) = wait_poll(&app, &created, bad).await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
    let (response, _) = wait_poll(&app, &created, "0").await;
    let with_wait: Value = response.json().await.unwrap();
    let without = app.status_ok(&created).await;
    assert_eq!(with_wait, without, "the same body");
    let wrong = app
        .http
        .get(app.url(&format!("/v1/token-requests/{}/status?wait=5", created.id)))
        .bearer_auth("not-the-poll-token")
        .send()
        .await
        .unwrap();
    assert_error(wrong, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn a_long_poll_does_not_count_against_the_concurrency_cap() {
    let app = spawn_app_with(|c| {
        c.limits.max_concurrent_requests = 4;
        c.limits.max_waiters_per_request = 8;
    })
    .await;
    app.fake.set_browser_mode(BrowserMode::Record);
    let created = app.create_ok().await;
    let _held: Vec<_> = (0..8).map(|_| waiting(&app, &created, 20)).collect();
    until_waiters(&app, 8).await;

    let other = app
        .create(serde_json::json!({"client_name": "b", "hostname": "h"}))
        .await;

    assert_eq!(other.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_shutdown_answers_waiting_long_polls_at_once_instead_of_waiting_them_out() {
    let mut app = spawn_app().await;
    let created = app.create_ok().await;
    let waiter = waiting(&app, &created, 20);
    until_waiters(&app, 1).await;
    let started = Instant::now();

    app.stop().await;

    let (code, body, _) = waiter.await.unwrap();
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body["status"], "pending");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

//! Polite clients: slow_down for status polls, the two create limits, and the caps that keep
//! one slow upstream from piling up work.

use std::time::Duration;

use fake_upstream::BrowserMode;
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

use claude_auth_router::db::batch;

use crate::helpers::{assert_error, spawn_app_with};

fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_poll_sooner_than_the_interval_gets_slow_down_and_the_first_never_does() {
    let app = spawn_app_with(|c| c.requests.poll_interval_secs = 2).await;
    let a = app.create_ok().await;
    let b = app.create_ok().await;

    let first = app.status(&a.id, &a.poll_token).await;
    let too_soon = app.status(&a.id, &a.poll_token).await;
    let other_request = app.status(&b.id, &b.poll_token).await;

    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(other_request.status(), StatusCode::OK, "per request");
    let wait = retry_after(&too_soon);
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    assert_error(too_soon, StatusCode::TOO_MANY_REQUESTS, "slow_down").await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(
        app.status(&a.id, &a.poll_token).await.status(),
        StatusCode::OK,
        "after the interval"
    );
}

#[tokio::test]
async fn polls_with_a_wrong_or_missing_token_never_count() {
    let app = spawn_app_with(|c| c.requests.poll_interval_secs = 30).await;
    let a = app.create_ok().await;

    for _ in 0..3 {
        assert_error(
            app.status(&a.id, "wrong").await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .await;
    }
    let no_token = app
        .http
        .get(app.url(&format!("/v1/token-requests/{}/status", a.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);

    assert_eq!(
        app.status(&a.id, &a.poll_token).await.status(),
        StatusCode::OK,
        "the owner's first poll passes"
    );
}

#[tokio::test]
async fn an_address_creating_too_fast_gets_rate_limited() {
    let app = spawn_app_with(|c| c.limits.creates_per_minute_per_ip = 3).await;

    let mut statuses = Vec::new();
    for i in 0..4 {
        let body = json!({"client_name": "c", "hostname": format!("host-{i}")});
        statuses.push(app.create(body).await);
    }

    let last = statuses.pop().unwrap();
    assert!(statuses.iter().all(|r| r.status() == StatusCode::CREATED));
    let wait = retry_after(&last);
    assert!((1..=20).contains(&wait), "one token per 20 s: {wait}");
    assert_error(last, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(app.count("auth_requests").await, 3);
    let invalid = app
        .create(json!({"client_name": "", "hostname": "h"}))
        .await;
    assert_error(invalid, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn a_hostname_with_too_many_open_requests_gets_rate_limited_even_when_racing() {
    let app = spawn_app_with(|c| c.limits.max_open_requests_per_client = 3).await;

    let racing =
        join_all((0..8).map(|_| app.create(json!({"client_name": "c", "hostname": "busy-host"}))))
            .await;

    let created = racing
        .iter()
        .filter(|r| r.status() == StatusCode::CREATED)
        .count();
    let limited: Vec<_> = racing
        .into_iter()
        .filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(
        (created, limited.len()),
        (3, 5),
        "exactly the limit, however the creates interleave"
    );
    // 601 when the soonest was stamped a moment after this answer's clock (creates commit
    // concurrently on PostgreSQL).
    let wait = retry_after(&limited[0]);
    assert!(
        (590..=601).contains(&wait),
        "until the soonest open request expires: {wait}"
    );
    let body: serde_json::Value = limited.into_iter().next().unwrap().json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("busy-host"));
    assert_eq!(
        app.create(json!({"client_name": "c", "hostname": "other-host"}))
            .await
            .status(),
        StatusCode::CREATED
    );

    let listed: serde_json::Value = app.list("?status=pending").await.json().await.unwrap();
    let one = listed["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["hostname"] == "busy-host")
        .unwrap();
    app.deny(one["request_id"].as_str().unwrap()).await;
    assert_eq!(
        app.create(json!({"client_name": "c", "hostname": "busy-host"}))
            .await
            .status(),
        StatusCode::CREATED,
        "a finished request frees a place"
    );
}

/// A create batch counts open requests through the partial indexes, and stops at the limit:
/// a hostname with thousands of open requests must not make every create scan them. (The
/// create writer's own statements, as SQLite plans them: per key, the count up to the limit
/// and the soonest deadline, each an index search in the index's own order.)
#[tokio::test]
async fn the_create_limit_count_reads_open_rows_through_their_index() {
    let app = spawn_app_with(|_| {}).await;
    for (sql, index) in [
        (batch::OPEN_FOR_CLIENT, "auth_requests_open_by_client"),
        (batch::OPEN_FOR_HOSTNAME, "auth_requests_open_by_hostname"),
    ] {
        let plan = app.query_plan(sql).await;
        let reads: Vec<&String> = plan
            .iter()
            .filter(|d| d.contains("auth_requests"))
            .collect();
        assert_eq!(
            reads.len(),
            2,
            "the count and the soonest deadline: {plan:?}"
        );
        assert!(
            reads
                .iter()
                .all(|d| d.starts_with("SEARCH") && d.contains(index)),
            "{index} not searched: {plan:?}"
        );
        assert!(
            !plan
                .iter()
                .any(|d| d.starts_with("SCAN auth_requests") || d.contains("TEMP B-TREE")),
            "no scan of the requests, and no sort: {plan:?}"
        );
    }
}

#[tokio::test]
async fn a_request_slower_than_the_server_timeout_answers_503_and_the_service_carries_on() {
    let app = spawn_app_with(|c| {
        c.control_browser.timeout_secs = 1;
        c.oauth.timeout_secs = 1;
        c.requests.max_wait_secs = 1;
        c.limits.request_timeout_secs = 2;
    })
    .await;
    let created = app.create_ok().await;
    // An admin's write transaction makes the deny wait on SQLite's 5 s busy timeout; the
    // 2 s server timeout must answer first.
    let mut admin = app.hold_write_lock().await;

    let started = std::time::Instant::now();
    let response = app.deny(&created.id).await;
    let waited = started.elapsed();

    assert_error(response, StatusCode::SERVICE_UNAVAILABLE, "timeout").await;
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    sqlx::query("ROLLBACK").execute(&mut admin).await.unwrap();
    assert_eq!(
        app.deny(&created.id).await.status(),
        StatusCode::OK,
        "nothing was left half-done"
    );
}

#[tokio::test]
async fn requests_beyond_the_concurrency_cap_are_refused_at_once_with_503() {
    let app = spawn_app_with(|c| c.limits.max_concurrent_requests = 2).await;
    app.fake
        .set_browser_mode(BrowserMode::Hang(Duration::from_millis(1500)));
    let a = app.create_ok().await;
    let b = app.create_ok().await;

    let (sa, sb, shed) = tokio::join!(app.select(&a.id, 1), app.select(&b.id, 1), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = std::time::Instant::now();
        (app.get(&app.url("/healthz")).await, started.elapsed())
    });

    assert_eq!((sa.status(), sb.status()), (StatusCode::OK, StatusCode::OK));
    let (response, waited) = shed;
    assert!(
        waited < Duration::from_millis(500),
        "refused at once, not queued: {waited:?}"
    );
    assert_error(response, StatusCode::SERVICE_UNAVAILABLE, "overloaded").await;
}

#[tokio::test]
async fn wrong_admin_and_submit_tokens_spend_the_sign_in_budget_and_then_even_the_right_token_gets_429(
) {
    let app = spawn_app_with(|c| {
        c.limits.failed_sign_ins_per_minute_per_ip = 4;
        c.control_browser.submit_token = secrecy::SecretString::from("a-submit-token-0123456789");
    })
    .await;
    let created = app.create_ok().await;
    let code_url = app.url(&format!("/v1/token-requests/{}/code", created.id));
    let guess = |url: String, token: &'static str| {
        let http = app.http.clone();
        async move {
            http.post(url)
                .bearer_auth(token)
                .json(&json!({"code": "c#s", "account_id": 1}))
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..2 {
        let wrong_admin = guess(app.url("/v1/clients"), "wrong-admin-guess").await;
        assert_eq!(wrong_admin.status(), StatusCode::UNAUTHORIZED);
        let wrong_submit = guess(code_url.clone(), "wrong-submit-guess").await;
        assert_eq!(wrong_submit.status(), StatusCode::UNAUTHORIZED);
    }

    let right_admin = app.list("").await;
    let right_submit = guess(code_url.clone(), "a-submit-token-0123456789").await;

    assert!(retry_after(&right_admin) >= 1);
    assert_error(right_admin, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_error(right_submit, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(
        app.db_status(&created.id).await,
        "pending",
        "nothing changed"
    );
}

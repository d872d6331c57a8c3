//! Usage windows read from the provider with the tokens the router holds: shown to
//! operators, used by `most_headroom`, respected by every strategy, and warned of once per
//! window per reset.

use std::time::{Duration, Instant};

use fake_upstream::{BrowserMode, Options, UsageAnswer};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_claude_app_with, two_accounts, webhook, Created, TestApp};
use crate::receiver::Receiver;

/// A claude app that reads usage from the fake, but only once an hour until
/// [`read_every_second`], so a test sets up its tokens before the first reading; with a
/// webhook for `account.quota_high` when `receiver` is given.
async fn usage_app(
    receiver: Option<&Receiver>,
    change: impl FnOnce(&mut claude_auth_router::Config),
) -> TestApp {
    let hook = receiver.map(|r| r.url());
    spawn_claude_app_with(Options::default(), |c| {
        c.accounts = two_accounts();
        c.oauth.usage_poll_secs = 3600;
        if let Some(url) = hook {
            c.notify.webhooks = vec![webhook(&url, &["account.quota_high"], "")];
        }
        change(c);
    })
    .await
}

/// Restarts the app reading usage every second (the key is read at startup).
async fn read_every_second(app: &mut TestApp) {
    app.restart_with(|c| c.oauth.usage_poll_secs = 1)
        .await
        .unwrap();
}

/// Waits until account `id`'s usage satisfies `check`; its entry in `GET /v1/accounts`.
async fn account_usage(app: &TestApp, id: u32, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let accounts: Value = app.admin_get("/v1/accounts").await;
        let account = accounts["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .cloned()
            .unwrap();
        if check(&account["usage"]) {
            return account;
        }
        assert!(Instant::now() < deadline, "account {id}: {account}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn five_hour_is(value: f64) -> impl Fn(&Value) -> bool {
    move |usage| usage["five_hour"]["utilization"].as_f64() == Some(value)
}

#[tokio::test]
async fn usage_is_read_with_a_live_token_and_shown_to_operators_and_in_metrics() {
    let mut app = usage_app(None, |_| {}).await;
    app.approved(1).await;
    app.fake.set_usage(1, 37.0, 12.0);
    read_every_second(&mut app).await;

    let account = account_usage(&app, 1, five_hour_is(37.0)).await;

    let usage = &account["usage"];
    assert_eq!(usage["seven_day"]["utilization"], 12.0);
    assert!(usage["five_hour"]["resets_at"].is_string(), "{usage}");
    assert!(
        usage["read_at"].is_string() && usage["error"].is_null(),
        "{usage}"
    );
    let calls = app.fake.usage_calls();
    assert!(
        calls
            .iter()
            .all(|c| c.account == Some(1) && c.status == 200),
        "{calls:?}"
    );
    let other = account_usage(&app, 2, |_| true).await;
    assert!(
        other["usage"]["five_hour"].is_null() && other["usage"]["read_at"].is_null(),
        "no live token, no reading: {other}"
    );
    let metrics = app.get(&app.url("/metrics")).await.text().await.unwrap();
    assert!(
        metrics.contains(r#"auth_router_account_utilization{account="1",window="five_hour"} 37"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_bad_usage_answer_is_recorded_as_the_error_and_changes_nothing_else() {
    let mut app = usage_app(None, |_| {}).await;
    app.approved(1).await;
    app.fake.set_usage(1, 37.0, 12.0);
    read_every_second(&mut app).await;
    let good = account_usage(&app, 1, five_hour_is(37.0)).await;

    app.fake.set_usage_answer(1, UsageAnswer::Garbage);
    let bad = account_usage(&app, 1, |u| u["error"].is_string()).await;

    assert_eq!(bad["usage"]["five_hour"], good["usage"]["five_hour"]);
    assert_eq!(bad["usage"]["seven_day"], good["usage"]["seven_day"]);
    assert_eq!(bad["usage"]["read_at"], good["usage"]["read_at"]);
    let error = bad["usage"]["error"].as_str().unwrap();
    assert!(
        !error.contains("html"),
        "never the provider's body: {error}"
    );

    app.fake.set_usage(1, 40.0, 12.0);
    let healed = account_usage(&app, 1, five_hour_is(40.0)).await;
    assert!(healed["usage"]["error"].is_null(), "{healed}");
}

#[tokio::test]
async fn a_refused_token_gives_way_to_the_accounts_next_live_one() {
    let mut app = usage_app(None, |_| {}).await;
    app.approved(1).await;
    app.approved(1).await;
    let newest = app.fake.secrets().access_tokens.last().unwrap().clone();
    app.fake.forget_access_token(&newest);
    app.fake.set_usage(1, 55.0, 5.0);
    read_every_second(&mut app).await;

    account_usage(&app, 1, five_hour_is(55.0)).await;

    let calls = app.fake.usage_calls();
    assert_eq!(calls[0].status, 401, "{calls:?}");
    assert_eq!(calls[1].status, 200, "{calls:?}");
}

#[tokio::test]
async fn a_rate_limited_usage_endpoint_is_asked_less_and_less_often() {
    let mut app = usage_app(None, |_| {}).await;
    app.approved(1).await;
    app.fake.set_usage_answer(1, UsageAnswer::Status(429));
    read_every_second(&mut app).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.fake.usage_calls().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the usage endpoint was never asked"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    tokio::time::sleep(Duration::from_millis(4500)).await;

    // Every second without the backoff (about five calls); at 2 s and then 4 s after the
    // first with it.
    let calls = app.fake.usage_calls();
    assert!((2..=3).contains(&calls.len()), "{calls:?}");
    assert!(calls.iter().all(|c| c.status == 429));
    let account = account_usage(&app, 1, |_| true).await;
    assert!(
        account["usage"]["error"].is_null(),
        "a rate limit passes: {account}"
    );
}

/// Creates a request as the auto-approved client `key`; the account the policy chose (or
/// `None`, left to an operator) once it settles.
async fn policy_choice(app: &TestApp, key: &str) -> (Created, Option<u64>) {
    let created = app
        .create_as_ok(key, json!({"client_name": "ci", "hostname": "runner"}))
        .await;
    let status = app.status_ok(&created).await;
    (created, status["account_id"].as_u64())
}

#[tokio::test]
async fn most_headroom_picks_the_emptiest_account_and_every_strategy_skips_one_over_quota() {
    let mut app = usage_app(None, |c| {
        c.policy.account_strategy = claude_auth_router::config::AccountStrategy::MostHeadroom;
    })
    .await;
    app.approved(1).await;
    app.approved(2).await;
    app.fake.set_usage(1, 10.0, 80.0);
    app.fake.set_usage(2, 40.0, 30.0);
    read_every_second(&mut app).await;
    account_usage(&app, 1, five_hour_is(10.0)).await;
    account_usage(&app, 2, five_hour_is(40.0)).await;
    let (_, key) = app
        .enroll(json!({"name": "ci", "auto_approve": true}))
        .await;
    app.fake.set_browser_mode(BrowserMode::Record);

    let (_, chosen) = policy_choice(&app, &key).await;
    assert_eq!(chosen, Some(2), "40% beats account 1's week at 80%");

    app.fake.set_usage(2, 96.0, 30.0);
    account_usage(&app, 2, five_hour_is(96.0)).await;
    let (_, chosen) = policy_choice(&app, &key).await;
    assert_eq!(chosen, Some(1), "account 2 is over policy.max_utilization");

    app.fake.set_usage(1, 99.0, 80.0);
    account_usage(&app, 1, five_hour_is(99.0)).await;
    let (held, chosen) = policy_choice(&app, &key).await;
    assert_eq!(chosen, None);
    assert_eq!(app.status_ok(&held).await["status"], "pending");
    let hold = app.audit_row(&held.id, "hold").await;
    assert!(
        hold["detail"].as_str().unwrap().starts_with("quota"),
        "{hold}"
    );
}

#[tokio::test]
async fn the_quota_warning_goes_out_once_per_window_per_reset() {
    let receiver = Receiver::start().await;
    let mut app = usage_app(Some(&receiver), |_| {}).await;
    app.approved(1).await;
    app.fake.set_usage(1, 92.0, 10.0);
    read_every_second(&mut app).await;

    let received = receiver.wait_for(1, Duration::from_secs(10)).await;
    let event = received[0].json();
    assert_eq!(event["type"], "account.quota_high");
    assert_eq!(event["account_id"], 1);
    assert_eq!(event["window"], "five_hour");
    assert_eq!(event["utilization"], 92.0);
    let resets_at =
        account_usage(&app, 1, five_hour_is(92.0)).await["usage"]["five_hour"]["resets_at"].clone();
    assert_eq!(
        crate::helpers::time_of(&event["resets_at"]),
        crate::helpers::time_of(&resets_at)
    );

    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.received().len(), 1, "once for this reset");

    let next_window = json!({
        "five_hour": {"utilization": 91.0, "resets_at": "2099-01-01T05:00:00Z"},
        "seven_day": {"utilization": 10.0, "resets_at": "2099-01-07T00:00:00Z"},
    });
    app.fake.set_usage_answer(1, UsageAnswer::Body(next_window));
    let received = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(
        received[1].json()["utilization"],
        91.0,
        "a new reset warns again"
    );
    assert_eq!(app.get(&app.url("/healthz")).await.status(), StatusCode::OK);
}

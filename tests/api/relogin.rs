//! The refresh-token deadline's warning: `token.relogin_due` once per bundle when its
//! refresh token dies within `notify.relogin_warning_secs`, and each account's soonest
//! deadline where operators look.

use std::time::Duration;

use fake_upstream::{BrowserMode, Options};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_claude_app_with, time_of, two_accounts, webhook, Created, TestApp};
use crate::receiver::Receiver;

/// A claude app whose reaper runs every `reaper_secs`, with a webhook for `events`.
async fn warning_app(receiver: &Receiver, events: &[&str], reaper_secs: u64) -> TestApp {
    let hook = webhook(&receiver.url(), events, "");
    spawn_claude_app_with(
        Options {
            refresh_token_expires_in: Some(3600),
            ..Options::default()
        },
        move |c| {
            c.accounts = two_accounts();
            c.reaper.interval_secs = reaper_secs;
            c.notify.webhooks = vec![hook];
        },
    )
    .await
}

/// Approves a request made with the enrolled client's `key`, on `account`.
async fn approved_as(app: &TestApp, key: &str, account: u32) -> Created {
    let created = app
        .create_as_ok(key, json!({"client_name": "ci", "hostname": "runner"}))
        .await;
    app.fake.set_browser_mode(BrowserMode::AutoApprove);
    assert_eq!(
        app.select(&created.id, account).await.status(),
        StatusCode::OK
    );
    app.fake.set_browser_mode(BrowserMode::Record);
    assert_eq!(app.status_ok(&created).await["status"], "approved");
    created
}

#[tokio::test]
async fn a_login_near_its_refresh_deadline_is_announced_once_and_shown_on_its_account() {
    let receiver = Receiver::start().await;
    let mut app = warning_app(&receiver, &["token.relogin_due"], 1).await;
    let (client_id, key) = app.enroll(json!({"name": "ci"})).await;
    let soon = approved_as(&app, &key, 1).await;
    app.fake.set_refresh_token_expires_in(None);
    let later = approved_as(&app, &key, 1).await;

    let received = receiver.wait_for(1, Duration::from_secs(10)).await;
    let event = received[0].json();
    assert_eq!(event["type"], "token.relogin_due");
    assert_eq!(event["request_id"], soon.id.as_str());
    assert_eq!(event["request"]["request_id"], soon.id.as_str());
    assert_eq!(event["client_id"], client_id.as_str());
    assert_eq!(event["account_id"], 1);
    let deadline = time_of(&app.status_ok(&soon).await["refresh_expires_at"]);
    assert_eq!(time_of(&event["refresh_expires_at"]), deadline);

    // Three more reaper passes, then a restart and two more: still the one warning, and
    // none for the login whose deadline is 29 days off.
    tokio::time::sleep(Duration::from_secs(3)).await;
    app.restart().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.received().len(), 1, "once per bundle");

    let accounts: Value = app.admin_get("/v1/accounts").await;
    let first = &accounts["accounts"][0];
    assert_eq!(first["live_tokens"], 2);
    assert_eq!(time_of(&first["soonest_relogin_at"]), deadline);
    assert!(accounts["accounts"][1]["soonest_relogin_at"].is_null());
    let listed: Value = app.list("?status=approved").await.json().await.unwrap();
    let row = |id: &str| {
        listed["requests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["request_id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(time_of(&row(&soon.id)["refresh_expires_at"]), deadline);
    assert!(time_of(&row(&later.id)["refresh_expires_at"]) > deadline + chrono::Duration::days(20));
}

#[tokio::test]
async fn a_revoked_login_is_not_announced() {
    let receiver = Receiver::start().await;
    let mut app = warning_app(&receiver, &["token.relogin_due"], 3600).await;
    let (_, key) = app.enroll(json!({"name": "ci"})).await;
    let created = approved_as(&app, &key, 2).await;
    assert_eq!(app.revoke(&created.id).await.status(), StatusCode::OK);

    app.restart_with(|c| c.reaper.interval_secs = 1)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;

    assert!(
        receiver.received().is_empty(),
        "nothing to log in again for"
    );
}

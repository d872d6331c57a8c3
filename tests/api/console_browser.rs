//! The operator console in a real browser: headless Chromium driven through WebDriver
//! (chromedriver). `.ci/run` installs Debian's `chromium` and `chromium-driver`; when they
//! are missing this test fails with a message saying so. It never skips.

use std::process::Stdio;
use std::time::Duration;

use fake_upstream::BrowserMode;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tokio::process::{Child, Command};

use crate::helpers::{spawn_app, spawn_app_with, two_accounts, TestApp, ADMIN_TOKEN};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The page refreshes every 1.5 s; anything it should show must appear well within this.
const UI_TIMEOUT: Duration = Duration::from_secs(6);

struct Browser {
    client: Client,
    _driver: Child,
}

async fn browser() -> Browser {
    for tool in [CHROMEDRIVER, CHROMIUM] {
        assert!(
            std::path::Path::new(tool).exists(),
            "{tool} is missing: install Debian's chromium and chromium-driver (.ci/run does)"
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver starts");
    let capabilities = json!({
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1280,900"
            ]
        }
    });
    let url = format!("http://127.0.0.1:{port}");
    let mut last_error = String::new();
    for _ in 0..100 {
        // chromedriver speaks plain HTTP on loopback: no TLS stack needed.
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities.as_object().unwrap().clone());
        match builder.connect(&url).await {
            Ok(client) => {
                return Browser {
                    client,
                    _driver: driver,
                }
            }
            Err(e) => last_error = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("headless Chromium did not start through chromedriver: {last_error}");
}

async fn css(b: &Browser, selector: &str) -> fantoccini::elements::Element {
    b.client
        .wait()
        .at_most(UI_TIMEOUT)
        .for_element(Locator::Css(selector))
        .await
        .unwrap_or_else(|e| panic!("{selector} did not appear: {e}"))
}

/// Waits until the element's text contains `expected`.
async fn wait_text(b: &Browser, selector: &str, expected: &str) -> String {
    let deadline = tokio::time::Instant::now() + UI_TIMEOUT;
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        if let Ok(el) = b.client.find(Locator::Css(selector)).await {
            last = el.text().await.unwrap_or_default();
            if last.contains(expected) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{selector} never showed {expected:?}; last: {last:?}");
}

async fn sign_in(b: &Browser, app: &TestApp, token: &str) {
    b.client.goto(&app.url("/admin")).await.unwrap();
    let field = css(b, "#sign-in:not([hidden]) #token").await;
    field.send_keys(token).await.unwrap();
    css(b, "#sign-in-form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
}

#[tokio::test]
async fn an_operator_signs_in_approves_denies_and_revokes_from_the_page() {
    let app = spawn_app().await;
    app.fake.set_browser_mode(BrowserMode::AutoApprove);
    let b = browser().await;

    sign_in(&b, &app, "not-the-token").await;
    wait_text(&b, "#status", "not right").await;
    css(&b, "#token").await.clear().await.unwrap();
    css(&b, "#token")
        .await
        .send_keys(ADMIN_TOKEN)
        .await
        .unwrap();
    css(&b, "#sign-in-form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    css(&b, "#console:not([hidden])").await;
    let cookies = b
        .client
        .execute("return document.cookie", vec![])
        .await
        .unwrap();
    assert_eq!(cookies, json!(""), "the session cookie is HttpOnly");
    let storage = b
        .client
        .execute("return localStorage.length + sessionStorage.length", vec![])
        .await
        .unwrap();
    assert_eq!(storage, json!(0), "nothing kept in page storage");

    let approved = app.create_ok().await;
    let row = format!("#open tr[data-id='{}']", approved.id);
    wait_text(&b, &format!("{row} .client"), "alice").await;
    wait_text(&b, &format!("{row} .badge.unverified"), "unverified").await;
    let enrolled = app
        .admin_post("/v1/clients", json!({"name": "enrolled-laptop"}))
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let verified: serde_json::Value = app
        .create_as(
            enrolled["client_key"].as_str().unwrap(),
            json!({"client_name": "x", "hostname": "laptop"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let verified_row = format!(
        "#open tr[data-id='{}']",
        verified["request_id"].as_str().unwrap()
    );
    wait_text(&b, &format!("{verified_row} .client"), "enrolled-laptop").await;
    let badge = wait_text(&b, &format!("{verified_row} .badge.verified"), "verified").await;
    assert_eq!(badge, "verified");
    css(&b, &format!("{row} input.account"))
        .await
        .send_keys("5")
        .await
        .unwrap();
    css(&b, &format!("{row} button.approve"))
        .await
        .click()
        .await
        .unwrap();
    wait_text(
        &b,
        &format!("#recent tr[data-id='{}'] .status", approved.id),
        "approved",
    )
    .await;
    assert_eq!(app.status_ok(&approved).await["account_id"], 5);

    let denied = app.create_ok().await;
    let row = format!("#open tr[data-id='{}']", denied.id);
    css(&b, &format!("{row} button.deny"))
        .await
        .click()
        .await
        .unwrap();
    wait_text(
        &b,
        &format!("#recent tr[data-id='{}'] .status", denied.id),
        "denied",
    )
    .await;
    assert_eq!(app.db_status(&denied.id).await, "denied");

    // Two more waiting, one of them with its login open, for the screenshot and the phone view.
    app.fake.set_browser_mode(BrowserMode::Record);
    let waiting = app.create_ok().await;
    let in_login = app.create_ok().await;
    app.select_and_capture(&in_login.id, 2).await;
    wait_text(
        &b,
        &format!("#open tr[data-id='{}'] .status", in_login.id),
        "in progress",
    )
    .await;
    css(
        &b,
        &format!(
            "#open tr[data-id='{}'] .code-box:not([hidden]) input.code",
            in_login.id
        ),
    )
    .await;
    let shot = b.client.screenshot().await.unwrap();
    std::fs::write(concat!(env!("CARGO_TARGET_TMPDIR"), "/console.png"), shot).unwrap();

    b.client.set_window_size(390, 844).await.unwrap();
    let approve = css(
        &b,
        &format!("#open tr[data-id='{}'] button.approve", waiting.id),
    )
    .await;
    assert!(approve.is_displayed().await.unwrap());
    let (x, _, width, _) = approve.rectangle().await.unwrap();
    assert!(
        x >= 0.0 && x + width <= 390.0,
        "the approve button fits a phone screen: x={x} w={width}"
    );
    let shot = b.client.screenshot().await.unwrap();
    std::fs::write(
        concat!(env!("CARGO_TARGET_TMPDIR"), "/console-phone.png"),
        shot,
    )
    .unwrap();
    b.client.set_window_size(1280, 900).await.unwrap();

    css(
        &b,
        &format!("#recent tr[data-id='{}'] button.revoke", approved.id),
    )
    .await
    .click()
    .await
    .unwrap();
    wait_text(
        &b,
        &format!("#recent tr[data-id='{}'] .status", approved.id),
        "revoked",
    )
    .await;
    css(
        &b,
        &format!("#recent tr[data-id='{}'] button.audit", approved.id),
    )
    .await
    .click()
    .await
    .unwrap();
    let trail = wait_text(
        &b,
        &format!("#recent tr[data-audit-for='{}']", approved.id),
        "revoke",
    )
    .await;
    assert!(
        trail.contains("select_account") && trail.contains("account 5"),
        "{trail}"
    );

    b.client.close().await.unwrap();
}

#[tokio::test]
async fn a_failing_control_browser_is_reported_and_the_request_stays_for_another_try() {
    let app = spawn_app().await;
    app.fake.set_browser_mode(BrowserMode::Fail);
    let b = browser().await;
    sign_in(&b, &app, ADMIN_TOKEN).await;
    css(&b, "#console:not([hidden])").await;
    let created = app.create_ok().await;
    let row = format!("#open tr[data-id='{}']", created.id);
    css(&b, &format!("{row} input.account"))
        .await
        .send_keys("2")
        .await
        .unwrap();

    css(&b, &format!("{row} button.approve"))
        .await
        .click()
        .await
        .unwrap();

    let status = wait_text(&b, "#status", "failed").await;
    assert!(status.contains("control browser"), "{status}");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let kept = css(&b, &format!("{row} input.account"))
        .await
        .prop("value")
        .await
        .unwrap();
    assert_eq!(
        kept.as_deref(),
        Some("2"),
        "the operator's choice survived the refresh"
    );
    app.fake.set_browser_mode(BrowserMode::AutoApprove);
    css(&b, &format!("{row} button.approve"))
        .await
        .click()
        .await
        .unwrap();
    wait_text(
        &b,
        &format!("#recent tr[data-id='{}'] .status", created.id),
        "approved",
    )
    .await;

    b.client.close().await.unwrap();
}

#[tokio::test]
async fn an_operator_enrolls_a_client_sees_its_key_once_and_pauses_an_account() {
    let app = spawn_app_with(|c| c.accounts = two_accounts()).await;
    app.fake.set_browser_mode(BrowserMode::AutoApprove);
    let b = browser().await;
    sign_in(&b, &app, ADMIN_TOKEN).await;
    css(&b, "#console:not([hidden])").await;

    // Add a client that needs no operator; its key is shown once.
    css(&b, "#client-name")
        .await
        .send_keys("auto-laptop")
        .await
        .unwrap();
    css(&b, "#client-auto").await.click().await.unwrap();
    css(&b, "#client-form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    css(&b, "#client-key:not([hidden])").await;
    let key = css(&b, "#client-key-value").await.text().await.unwrap();
    assert_eq!(key.len(), 43, "a 256-bit key: {key:?}");
    wait_text(&b, "#clients tr .name", "auto-laptop").await;
    wait_text(&b, "#clients tr .approval", "automatic").await;
    css(&b, "#client-key-done").await.click().await.unwrap();
    css(&b, "#client-key[hidden]").await;
    let page = b.client.source().await.unwrap();
    assert!(
        !page.contains(&key),
        "the key is gone from the page once dismissed"
    );

    // A request from that client is approved without a click.
    let created: serde_json::Value = app
        .create_as(&key, json!({"client_name": "x", "hostname": "auto-host"}))
        .await
        .json()
        .await
        .unwrap();
    let row = format!(
        "#recent tr[data-id='{}']",
        created["request_id"].as_str().unwrap()
    );
    wait_text(&b, &format!("{row} .status"), "approved").await;

    // Pause account 2 from the Accounts panel.
    css(&b, "#accounts tr[data-account='2'] button.pause")
        .await
        .click()
        .await
        .unwrap();
    wait_text(&b, "#accounts tr[data-account='2'] .state", "paused").await;
    let accounts = app.admin_get("/v1/accounts").await;
    assert_eq!(accounts["accounts"][1]["paused"], true);
    let waiting = app.create_ok().await;
    let option = format!(
        "#open tr[data-id='{}'] select.account option[value='2']",
        waiting.id
    );
    wait_text(&b, &option, "paused").await;

    // The Changes panel lists who changed what, newest first.
    wait_text(
        &b,
        "#changes tbody tr:first-child .subject",
        "account backup",
    )
    .await;
    wait_text(&b, "#changes tbody tr:first-child .action", "pause").await;
    wait_text(&b, "#changes tbody tr:first-child .actor", "admin").await;
    wait_text(
        &b,
        "#changes tbody tr:nth-child(2) .subject",
        "client auto-laptop",
    )
    .await;
    wait_text(&b, "#changes tbody tr:nth-child(2) .action", "add").await;

    // The panels stay usable at phone width.
    b.client.set_window_size(390, 844).await.unwrap();
    for selector in [
        "#accounts tr[data-account='1'] button.pause",
        "#client-form button[type=submit]",
        "#clients tr button.rotate",
    ] {
        let button = css(&b, selector).await;
        let (x, _, width, _) = button.rectangle().await.unwrap();
        assert!(
            x >= 0.0 && x + width <= 390.0,
            "{selector} fits: x={x} w={width}"
        );
    }
    let shot = b.client.screenshot().await.unwrap();
    std::fs::write(
        concat!(env!("CARGO_TARGET_TMPDIR"), "/console-panels-phone.png"),
        shot,
    )
    .unwrap();
    // Closing the session ends Chromium; dropping chromedriver alone would orphan it.
    b.client.close().await.unwrap();
}

#[tokio::test]
async fn the_console_shows_usage_bars_relogin_marks_and_a_long_lived_ask() {
    let app = crate::helpers::spawn_claude_app_with(
        fake_upstream::Options {
            refresh_token_expires_in: Some(3600),
            ..Default::default()
        },
        |c| {
            c.accounts = two_accounts();
            c.oauth.usage_poll_secs = 1;
            c.requests.max_token_lifetime_secs = 31_536_000;
        },
    )
    .await;
    let approved = app.approved(1).await;
    app.fake.set_usage(1, 37.0, 12.0);
    let (_, key) = app
        .enroll(json!({"name": "ci", "max_token_lifetime_secs": 31_536_000}))
        .await;
    let asked: serde_json::Value = app
        .create_as(
            &key,
            json!({"client_name": "ci", "hostname": "runner", "lifetime_secs": 31_536_000}),
        )
        .await
        .json()
        .await
        .unwrap();
    let b = browser().await;
    sign_in(&b, &app, ADMIN_TOKEN).await;

    let open = format!(
        "#open tr[data-id='{}']",
        asked["request_id"].as_str().unwrap()
    );
    wait_text(&b, &format!("{open} .badge.long-lived"), "long-lived: 365d").await;
    let recent = format!("#recent tr[data-id='{}']", approved.id);
    wait_text(
        &b,
        &format!("{recent} .badge.relogin-due"),
        "re-login due by",
    )
    .await;
    let five_hour = "#accounts tr[data-account='1'] .five-hour";
    wait_text(&b, five_hour, "37%").await;
    let meter = css(&b, &format!("{five_hour} meter")).await;
    assert_eq!(meter.attr("value").await.unwrap().as_deref(), Some("37"));
    wait_text(&b, "#accounts tr[data-account='1'] .seven-day", "12%").await;
    wait_text(&b, "#accounts tr[data-account='2'] .five-hour", "—").await;
    b.client.close().await.unwrap();
}

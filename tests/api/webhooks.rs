//! Durable, signed webhooks, and the one commit path that writes their outbox rows.

use std::time::{Duration, Instant};

use fake_upstream::{BrowserMode, TokenFault};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::Sha256;

use crate::helpers::{spawn_app_with, Created, TestApp, ADMIN_TOKEN};
use crate::receiver::{url_of, Receiver};

const SECRET: &str = "webhook-signing-secret-for-tests";

fn webhook(url: &str, events: &[&str]) -> claude_auth_router::config::WebhookConfig {
    crate::helpers::webhook(url, events, SECRET)
}

async fn app_notifying(url: &str) -> TestApp {
    let url = url.to_owned();
    spawn_app_with(move |c| c.notify.webhooks = vec![webhook(&url, &[])]).await
}

/// Checks `X-Auth-Router-Signature: t=…,v1=…` as a receiver would: HMAC-SHA256 of
/// "<t>.<body>" with the shared secret, and a recent `t`.
fn signature_is_valid(received: &crate::receiver::Received) -> bool {
    let header = received.header("x-auth-router-signature");
    let Some((t, v1)) = header
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{}", received.body).as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let fresh = (chrono::Utc::now().timestamp() - t.parse::<i64>().unwrap()).abs() < 60;
    expected == v1 && fresh
}

fn events(received: &[crate::receiver::Received]) -> Vec<String> {
    received
        .iter()
        .map(|r| r.header("x-auth-router-event"))
        .collect()
}

#[tokio::test]
async fn every_event_type_reaches_the_receiver_signed_and_without_any_secret() {
    let receiver = Receiver::start().await;
    let app = app_notifying(&receiver.url()).await;
    let mut polls = Vec::new();
    // request.pending, then request.approved
    let approved = app.approved(1).await;
    polls.push(approved.poll_token.clone());
    // request.denied, request.cancelled
    let denied = app.create_ok().await;
    app.deny(&denied.id).await;
    let cancelled = app.create_ok().await;
    app.cancel(&cancelled.id, &cancelled.poll_token).await;
    // control_browser.failed
    app.fake.set_browser_mode(BrowserMode::Fail);
    let failed_browser = app.create_ok().await;
    app.select(&failed_browser.id, 1).await;
    app.fake.set_browser_mode(BrowserMode::Record);
    // request.error
    let errored = app.create_ok().await;
    let callback = app.callback_url_for(&errored.id, 1).await;
    app.fake.set_token_fault(Some(TokenFault::ServerError));
    app.get(&callback).await;
    app.fake.set_token_fault(None);
    // refresh.rejected, then request.revoked
    app.fake.revoke_refresh_tokens();
    app.refresh(&approved.id, &approved.poll_token).await;
    app.revoke(&approved.id).await;
    // request.expired
    claude_auth_router::reaper::reap_once(
        &app.app_db(),
        chrono::Utc::now() + chrono::Duration::hours(1),
    )
    .await
    .unwrap();
    // test
    let test = app
        .http
        .post(app.url("/v1/webhooks/test"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(test.status(), StatusCode::OK);
    polls.extend([denied, cancelled, failed_browser, errored].map(|c| c.poll_token));

    let received = receiver.wait_for(14, Duration::from_secs(10)).await;

    let types = events(&received);
    for expected in [
        "request.pending",
        "request.approved",
        "request.denied",
        "request.cancelled",
        "control_browser.failed",
        "request.error",
        "refresh.rejected",
        "request.revoked",
        "request.expired",
        "test",
    ] {
        assert!(
            types.iter().any(|t| t == expected),
            "no {expected}: {types:?}"
        );
    }
    let s = app.fake.secrets();
    let secrets = [
        s.codes,
        s.states,
        s.verifiers,
        s.access_tokens,
        s.refresh_tokens,
        polls,
    ]
    .concat();
    for r in &received {
        assert!(signature_is_valid(r), "bad signature: {r:?}");
        let body = r.json();
        assert_eq!(body["type"], r.header("x-auth-router-event"));
        assert_eq!(body["id"], r.header("x-auth-router-delivery"));
        for secret in secrets
            .iter()
            .map(String::as_str)
            .chain([ADMIN_TOKEN, SECRET])
        {
            assert!(!r.body.contains(secret), "a secret in {}", r.body);
        }
    }
    let denial = received
        .iter()
        .map(|r| r.json())
        .find(|b| b["type"] == "request.denied")
        .unwrap();
    let request = &denial["request"];
    assert_eq!(request["client_name"], "alice");
    assert_eq!(request["hostname"], "laptop");
    assert_eq!(request["status"], "denied");
    for key in ["request_id", "scopes", "account_id", "error"] {
        assert!(request.get(key).is_some(), "{key} in {request}");
    }
    let metrics = app.get(&app.url("/metrics")).await.text().await.unwrap();
    assert!(
        metrics
            .contains(r#"auth_router_webhook_deliveries_total{webhook="0",outcome="delivered"}"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_every_event_in_order_once_it_is_up() {
    let addr = Receiver::unused_addr();
    let app = app_notifying(&url_of(addr)).await;
    let created: Vec<Created> = {
        let mut all = Vec::new();
        for _ in 0..3 {
            all.push(app.create_ok().await);
        }
        all
    };
    tokio::time::sleep(Duration::from_millis(1_500)).await; // attempts fail meanwhile

    let receiver = Receiver::start_on(addr).await;
    let received = receiver.wait_for(3, Duration::from_secs(20)).await;

    let ids: Vec<String> = received
        .iter()
        .map(|r| {
            r.json()["request"]["request_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let created: Vec<String> = created.into_iter().map(|c| c.id).collect();
    assert_eq!(ids, created, "in commit order");
    let listed: Value = app.admin_get("/v1/webhooks/deliveries").await;
    let first = listed["deliveries"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(first["status"], "delivered");
    assert!(first["attempts"].as_i64().unwrap() >= 2, "{first}");
}

#[tokio::test]
async fn a_410_gives_up_at_once_and_the_next_event_still_goes() {
    let receiver = Receiver::start().await;
    receiver.answer(StatusCode::GONE);
    let app = app_notifying(&receiver.url()).await;
    app.create_ok().await;
    receiver.wait_for(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(receiver.received().len(), 1, "never retried");

    receiver.answer(StatusCode::OK);
    app.create_ok().await;

    receiver.wait_for(2, Duration::from_secs(5)).await;
    // The sender marks the row after the receiver's answer reaches it.
    let pool = app.sql_pool().await;
    let expected = [("failed".to_owned(), 1), ("delivered".to_owned(), 1)];
    let mut rows: Vec<(String, i64)> = Vec::new();
    for _ in 0..50 {
        rows = sqlx::query_as("SELECT status, attempts FROM webhook_deliveries ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
        if rows == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rows, expected);
}

#[tokio::test]
async fn the_slack_format_is_a_text_with_client_host_scopes_and_a_console_link() {
    let receiver = Receiver::start().await;
    let url = receiver.url();
    let app = spawn_app_with(move |c| {
        let mut hook = webhook(&url, &["request.pending"]);
        hook.format = claude_auth_router::config::WebhookFormat::Slack;
        c.notify.webhooks = vec![hook];
        c.admin.public_url = "https://auth-router.example.com".into();
    })
    .await;
    let created = app
        .create(serde_json::json!({
            "client_name": "bob", "hostname": "bob-laptop", "scopes": ["user:inference"]
        }))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);

    let received = receiver.wait_for(1, Duration::from_secs(5)).await;

    let body = received[0].json();
    assert_eq!(body.as_object().unwrap().len(), 1, "only text: {body}");
    let text = body["text"].as_str().unwrap();
    for part in [
        "bob",
        "bob-laptop",
        "user:inference",
        "https://auth-router.example.com/admin",
    ] {
        assert!(text.contains(part), "{part} in {text}");
    }
}

#[tokio::test]
async fn a_webhook_gets_only_the_events_it_lists() {
    let receiver = Receiver::start().await;
    let url = receiver.url();
    let app =
        spawn_app_with(move |c| c.notify.webhooks = vec![webhook(&url, &["request.denied"])]).await;
    let created = app.create_ok().await;
    app.deny(&created.id).await;

    let received = receiver.wait_for(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(events(&receiver.received()), ["request.denied"]);
    assert_eq!(
        received[0].json()["request"]["request_id"],
        created.id.as_str()
    );
}

/// The state of one request as seen from outside, for the commit-path test.
async fn observe(app: &TestApp, id: &str) -> (i64, i64, String) {
    let pool = app.sql_pool().await;
    let audit: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE request_id = ?")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    let outbox: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE request_id = ?")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    let event: String = sqlx::query_scalar(
        "SELECT COALESCE(MAX(event_type), '') FROM webhook_deliveries
         WHERE id = (SELECT MAX(id) FROM webhook_deliveries WHERE request_id = ?)",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    (audit, outbox, event)
}

/// Every action that changes a request writes its audit row and its outbox row in one
/// commit, wakes a long poll, and leaves no stale cached row: one path owns all four.
#[tokio::test]
async fn every_change_writes_its_audit_and_outbox_rows_wakes_waiters_and_refreshes_the_cache() {
    // Nothing listens: rows stay in the outbox to be counted.
    let app = app_notifying(&url_of(Receiver::unused_addr())).await;
    for (name, status, event) in [
        ("deny", "denied", "request.denied"),
        ("cancel", "cancelled", "request.cancelled"),
        ("callback", "approved", "request.approved"),
        ("provider error", "error", "request.error"),
        (
            "control browser failure",
            "pending",
            "control_browser.failed",
        ),
        ("expiry", "expired", "request.expired"),
        ("revoke", "revoked", "request.revoked"),
    ] {
        let created = app.create_ok().await;
        let mut callback = None;
        if ["callback", "provider error"].contains(&name) {
            callback = Some(app.callback_url_for(&created.id, 1).await);
        }
        if name == "revoke" {
            app.fake.set_browser_mode(BrowserMode::AutoApprove);
            app.select(&created.id, 1).await;
            app.fake.set_browser_mode(BrowserMode::Record);
        }
        assert!(!app.status_ok(&created).await["status"].is_null()); // cached now
        let before = observe(&app, &created.id).await;
        // A request that is already finished answers a long poll at once: nothing to wake.
        let waits = name != "revoke";
        let waiter = {
            let (http, url, token) = (
                app.http.clone(),
                app.url(&format!("/v1/token-requests/{}/status?wait=20", created.id)),
                created.poll_token.clone(),
            );
            tokio::spawn(async move {
                let body: Value = http
                    .get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                (body, Instant::now())
            })
        };
        tokio::time::sleep(Duration::from_millis(150)).await;

        match name {
            "deny" => assert_eq!(app.deny(&created.id).await.status(), StatusCode::OK),
            "cancel" => {
                let answer = app.cancel(&created.id, &created.poll_token).await;
                assert_eq!(answer.status(), StatusCode::OK)
            }
            "callback" => {
                assert_eq!(
                    app.get(callback.as_ref().unwrap()).await.status(),
                    StatusCode::OK
                )
            }
            "provider error" => {
                app.fake.set_token_fault(Some(TokenFault::ServerError));
                app.get(callback.as_ref().unwrap()).await;
                app.fake.set_token_fault(None);
            }
            "control browser failure" => {
                app.fake.set_browser_mode(BrowserMode::Fail);
                app.select(&created.id, 1).await;
                app.fake.set_browser_mode(BrowserMode::Record);
            }
            "expiry" => {
                let later = chrono::Utc::now() + chrono::Duration::hours(1);
                claude_auth_router::reaper::reap_once(&app.app_db(), later)
                    .await
                    .unwrap();
            }
            _ => assert_eq!(app.revoke(&created.id).await.status(), StatusCode::OK),
        }
        let changed_at = Instant::now();

        let (woken, at) = waiter.await.unwrap();
        let after = observe(&app, &created.id).await;
        assert!(after.0 > before.0, "{name}: an audit row");
        assert!(after.1 > before.1, "{name}: an outbox row");
        assert_eq!(after.2, event, "{name}");
        if waits {
            assert!(
                at.saturating_duration_since(changed_at) < Duration::from_millis(100),
                "{name}: the waiter woke"
            );
            // A failed control browser shows its first commit (in progress) to a waiter,
            // before the request is put back.
            if name != "control browser failure" {
                assert_eq!(woken["status"], status, "{name}: the woken answer");
            }
        }
        let polled = app.status_ok(&created).await;
        assert_eq!(polled["status"], status, "{name}: no stale cached row");
    }
}

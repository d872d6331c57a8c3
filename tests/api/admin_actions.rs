use fake_upstream::{BrowserMode, TokenFault};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_error, query_param, spawn_app, spawn_app_with, ADMIN_TOKEN};

async fn audit(app: &crate::helpers::TestApp, query: &str) -> reqwest::Response {
    app.http
        .get(app.url(&format!("/v1/audit{query}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
}

async fn trail(app: &crate::helpers::TestApp, id: &str) -> Vec<Value> {
    app.audit_trail(id).await
}

fn rows(events: &[Value]) -> Vec<(String, String, String, String)> {
    events
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or("-").to_owned();
            (s("action"), s("actor"), s("from_status"), s("to_status"))
        })
        .collect()
}

fn row(action: &str, actor: &str, from: &str, to: &str) -> (String, String, String, String) {
    (action.into(), actor.into(), from.into(), to.into())
}

#[tokio::test]
async fn every_change_of_a_flow_is_in_its_audit_trail_in_order_without_a_secret() {
    let app = spawn_app().await;
    let created = app.create_ok().await;
    app.select_and_capture(&created.id, 1).await;
    let callback = app.callback_url_for(&created.id, 2).await;
    assert_eq!(app.get(&callback).await.status(), StatusCode::OK);
    assert_eq!(
        app.refresh(&created.id, &created.poll_token).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.revoke(&created.id).await.status(), StatusCode::OK);

    let events = trail(&app, &created.id).await;

    assert_eq!(
        rows(&events),
        [
            row("create", "client:laptop", "-", "pending"),
            row("select_account", "admin", "pending", "in_progress"),
            row("select_account", "admin", "in_progress", "in_progress"),
            row("approve", "provider", "in_progress", "approved"),
            row("refresh", "client:laptop", "approved", "approved"),
            row("revoke", "admin", "approved", "revoked"),
        ]
    );
    assert_eq!(events[1]["detail"], "account 1");
    assert_eq!(events[3]["detail"], "account 2");
    let text = serde_json::to_string(&events).unwrap();
    let s = app.fake.secrets();
    for secret in [
        s.codes,
        s.states,
        s.verifiers,
        s.access_tokens,
        s.refresh_tokens,
        vec![created.poll_token],
    ]
    .concat()
    {
        assert!(!text.contains(&secret), "a secret in the audit trail");
    }
}

#[tokio::test]
async fn denials_cancels_failures_restores_and_expiries_are_audited_with_their_actor() {
    let app = spawn_app().await;
    let denied = app.create_ok().await;
    app.deny(&denied.id).await;
    let cancelled = app.create_ok().await;
    app.cancel(&cancelled.id, &cancelled.poll_token).await;
    let restored = app.create_ok().await;
    app.fake.set_browser_mode(BrowserMode::Fail);
    app.select(&restored.id, 4).await;
    app.fake.set_browser_mode(BrowserMode::Record);
    let failed = app.create_ok().await;
    let callback = app.callback_url_for(&failed.id, 1).await;
    app.fake.set_token_fault(Some(TokenFault::ServerError));
    app.get(&callback).await;
    let db = app.db().await;
    claude_auth_router::reaper::reap_once(&db, chrono::Utc::now() + chrono::Duration::hours(1))
        .await
        .unwrap();

    assert_eq!(
        rows(&trail(&app, &denied.id).await)[1],
        row("deny", "admin", "pending", "denied")
    );
    assert_eq!(
        rows(&trail(&app, &cancelled.id).await)[1],
        row("cancel", "client:laptop", "pending", "cancelled")
    );
    let restore = trail(&app, &restored.id).await;
    assert_eq!(
        rows(&restore)[1..],
        [
            row("select_account", "admin", "pending", "in_progress"),
            row("restore", "admin", "in_progress", "pending"),
            row("expire", "reaper", "pending", "expired"),
        ]
    );
    assert!(restore[2]["detail"]
        .as_str()
        .unwrap()
        .contains("control browser"));
    let fail = trail(&app, &failed.id).await;
    assert_eq!(
        rows(&fail)[2],
        row("fail", "provider", "in_progress", "error")
    );
}

#[tokio::test]
async fn the_audit_listing_is_newest_first_bounded_and_admin_only() {
    let app = spawn_app().await;
    let a = app.create_ok().await;
    let b = app.create_ok().await;
    app.deny(&a.id).await;

    let all: Value = audit(&app, "?limit=2").await.json().await.unwrap();
    let events = all["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["action"], "deny");
    assert_eq!(events[1]["request_id"], b.id.as_str());

    assert_error(
        audit(&app, "?request_id=nope").await,
        StatusCode::BAD_REQUEST,
        "invalid_request_id",
    )
    .await;
    assert_error(
        audit(&app, "?limit=0").await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    let anonymous = app.http.get(app.url("/v1/audit")).send().await.unwrap();
    assert_error(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn revoke_deletes_the_tokens_and_refresh_then_answers_409() {
    let app = spawn_app().await;
    let created = app.approved(1).await;
    let pending = app.create_ok().await;
    let response = app.revoke(&created.id).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"request_id": created.id, "status": "revoked", "provider_revoked": null}),
        "no revocation_url: nothing asked of the provider"
    );
    let status = app.status_ok(&created).await;
    assert_eq!(status["status"], "revoked");
    assert_eq!(status["token"], Value::Null);
    assert_eq!(app.count("token_bundles").await, 0);
    assert_error(
        app.refresh(&created.id, &created.poll_token).await,
        StatusCode::CONFLICT,
        "invalid_status",
    )
    .await;
    assert_error(
        app.revoke(&created.id).await,
        StatusCode::CONFLICT,
        "invalid_status",
    )
    .await;
    assert_error(
        app.revoke(&pending.id).await,
        StatusCode::CONFLICT,
        "invalid_status",
    )
    .await;
    assert_error(
        app.revoke("0b8f1f4e-7c1d-4e8b-9a53-2f2d3c4b5a69").await,
        StatusCode::NOT_FOUND,
        "request_not_found",
    )
    .await;
}

async fn paste(app: &crate::helpers::TestApp, id: &str, code: &str) -> reqwest::Response {
    app.admin_post(
        &format!("/v1/token-requests/{id}/code"),
        json!({ "code": code }),
    )
    .await
}

/// The text a provider's code page shows for this redirect: `code#state`.
fn shown_code(url: &str) -> String {
    format!(
        "{}#{}",
        query_param(url, "code").unwrap(),
        query_param(url, "state").unwrap()
    )
}

#[tokio::test]
async fn a_pasted_code_is_exchanged_like_a_callback_and_works_once() {
    let app = spawn_app().await;
    let created = app.create_ok().await;
    let shown = app.callback_url_for(&created.id, 3).await;
    let code = shown_code(&shown);

    let response = paste(&app, &created.id, &code).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"request_id": created.id, "status": "approved"})
    );
    assert_eq!(app.status_ok(&created).await["account_id"], 3);
    assert_error(
        paste(&app, &created.id, &code).await,
        StatusCode::CONFLICT,
        "invalid_status",
    )
    .await;
    assert_error(
        app.get(&shown).await,
        StatusCode::BAD_REQUEST,
        "invalid_callback",
    )
    .await;
    assert_eq!(app.fake.token_calls(), 1);
    let actions = rows(&trail(&app, &created.id).await);
    assert_eq!(
        actions.last().unwrap(),
        &row("approve", "admin", "in_progress", "approved")
    );
}

#[tokio::test]
async fn a_pasted_code_with_state_must_carry_the_current_state() {
    let app = spawn_app().await;
    let created = app.create_ok().await;
    let old = app.callback_url_for(&created.id, 1).await;
    let current = app.callback_url_for(&created.id, 1).await;
    let with_state = |url: &str| shown_code(url);

    let stale = paste(&app, &created.id, &with_state(&old)).await;
    let forged = paste(
        &app,
        &created.id,
        &format!("{}#forged", query_param(&current, "code").unwrap()),
    )
    .await;

    assert_error(stale, StatusCode::BAD_REQUEST, "invalid_code").await;
    assert_error(forged, StatusCode::BAD_REQUEST, "invalid_code").await;
    assert_eq!(
        app.fake.token_calls(),
        0,
        "a mismatched state never reaches the provider"
    );
    assert_eq!(app.status_ok(&created).await["status"], "in_progress");
    assert_eq!(
        paste(&app, &created.id, &with_state(&current))
            .await
            .status(),
        StatusCode::OK
    );
    assert_error(
        paste(&app, &created.id, &with_state(&current)).await,
        StatusCode::CONFLICT,
        "invalid_status",
    )
    .await;
}

#[tokio::test]
async fn a_mismatched_code_fails_the_request_and_bad_bodies_change_nothing() {
    let app = spawn_app().await;
    let pending = app.create_ok().await;
    let created = app.create_ok().await;
    let auth_url = app.select_and_capture(&created.id, 1).await;
    let state = query_param(&auth_url, "state").unwrap();

    assert_error(
        paste(&app, &pending.id, "abc#some-state").await,
        StatusCode::CONFLICT,
        "invalid_status",
    )
    .await;
    for bad in ["", "  ", "has space", "#state-only"] {
        assert_error(
            paste(&app, &created.id, bad).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
    }
    assert_eq!(app.status_ok(&created).await["status"], "in_progress");

    let wrong = paste(&app, &created.id, &format!("not-the-code#{state}")).await;

    assert_error(wrong, StatusCode::BAD_GATEWAY, "exchange_failed").await;
    let status = app.status_ok(&created).await;
    assert_eq!(status["status"], "error");
    assert!(status["error"].as_str().unwrap().contains("invalid_grant"));
}

#[tokio::test]
async fn a_pasted_code_without_its_state_is_refused_unless_the_weaker_mode_is_configured() {
    let app = spawn_app().await;
    let created = app.create_ok().await;
    let shown = app.callback_url_for(&created.id, 1).await;
    let bare = query_param(&shown, "code").unwrap();

    let refused = paste(&app, &created.id, &bare).await;

    assert_error(refused, StatusCode::BAD_REQUEST, "invalid_code").await;
    assert_eq!(app.fake.token_calls(), 0, "nothing reached the provider");
    assert_eq!(app.status_ok(&created).await["status"], "in_progress");

    let weaker = spawn_app_with(|c| c.oauth.allow_code_without_state = true).await;
    let created = weaker.create_ok().await;
    let shown = weaker.callback_url_for(&created.id, 1).await;
    let bare = query_param(&shown, "code").unwrap();
    assert_eq!(
        paste(&weaker, &created.id, &bare).await.status(),
        StatusCode::OK
    );
    assert_eq!(weaker.status_ok(&created).await["status"], "approved");
}

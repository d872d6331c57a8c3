//! Long-lived inference tokens (`lifetime_secs`), what `claude setup-token` gets: allowed
//! only within the router's and the client's maxima, for inference scopes, and with nothing
//! to refresh.

use fake_upstream::Options;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_error, spawn_claude_app_with, time_of, two_accounts, TestApp};

const YEAR: u64 = 31_536_000;

async fn app_allowing(max: u64) -> TestApp {
    spawn_claude_app_with(Options::default(), move |c| {
        c.accounts = two_accounts();
        c.requests.max_token_lifetime_secs = max;
    })
    .await
}

fn asking(lifetime: u64) -> Value {
    json!({"client_name": "ci", "hostname": "runner-1", "lifetime_secs": lifetime})
}

#[tokio::test]
async fn a_long_lived_token_is_granted_within_every_bound_and_has_nothing_to_refresh() {
    let app = app_allowing(YEAR).await;
    let (_, key) = app
        .enroll(json!({"name": "ci", "max_token_lifetime_secs": YEAR}))
        .await;

    let created = app.create_as_ok(&key, asking(YEAR)).await;
    let listed: Value = app.list("?status=pending").await.json().await.unwrap();
    assert_eq!(
        listed["requests"][0]["lifetime_secs"], YEAR,
        "the operator sees the lifetime before approving"
    );
    assert_eq!(
        listed["requests"][0]["scopes"],
        json!(["user:profile", "user:inference", "user:file_upload"]),
        "no scopes named: the default ones a long-lived token may carry"
    );

    let callback = app.callback_url_for(&created.id, 1).await;
    assert_eq!(app.get(&callback).await.status(), StatusCode::OK);

    let status = app.status_ok(&created).await;
    assert_eq!(status["status"], "approved", "{status}");
    let expires = time_of(&status["token"]["expires_at"]);
    let days = (expires - chrono::Utc::now()).num_hours() as f64 / 24.0;
    assert!(
        (364.9..=365.0).contains(&days),
        "expires_in {YEAR}: {days} days"
    );
    assert!(status["refresh_expires_at"].is_null(), "{status}");
    let refresh = app.refresh(&created.id, &created.poll_token).await;
    assert_error(refresh, StatusCode::CONFLICT, "not_refreshable").await;
    let approve = app.audit_row(&created.id, "approve").await;
    assert!(
        approve["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("lifetime_secs {YEAR}")),
        "{approve}"
    );
}

#[tokio::test]
async fn a_lifetime_past_any_bound_or_for_other_scopes_is_refused_and_stores_nothing() {
    let off = app_allowing(0).await;
    let (_, key) = off
        .enroll(json!({"name": "ci", "max_token_lifetime_secs": YEAR}))
        .await;
    let refused = assert_error(
        off.create_as(&key, asking(3600)).await,
        StatusCode::BAD_REQUEST,
        "lifetime_not_allowed",
    )
    .await;
    assert!(refused["message"]
        .as_str()
        .unwrap()
        .contains("requests.max_token_lifetime_secs"));
    assert_eq!(off.count("auth_requests").await, 0);

    let app = app_allowing(30 * 86_400).await;
    let (_, ci) = app
        .enroll(json!({"name": "ci", "max_token_lifetime_secs": 7 * 86_400}))
        .await;
    let (_, plain) = app.enroll(json!({"name": "laptop"})).await;
    let over_router = assert_error(
        app.create_as(&ci, asking(YEAR)).await,
        StatusCode::BAD_REQUEST,
        "lifetime_not_allowed",
    )
    .await;
    assert!(
        over_router["message"].as_str().unwrap().contains("2592000"),
        "{over_router}"
    );
    let over_client = assert_error(
        app.create_as(&ci, asking(8 * 86_400)).await,
        StatusCode::BAD_REQUEST,
        "lifetime_not_allowed",
    )
    .await;
    assert!(
        over_client["message"].as_str().unwrap().contains("604800"),
        "{over_client}"
    );
    assert_error(
        app.create_as(&plain, asking(3600)).await,
        StatusCode::BAD_REQUEST,
        "lifetime_not_allowed",
    )
    .await;
    let unverified = assert_error(
        app.create(asking(3600)).await,
        StatusCode::BAD_REQUEST,
        "lifetime_not_allowed",
    )
    .await;
    assert!(unverified["message"].as_str().unwrap().contains("enrolled"));
    let mut body = asking(3600);
    body["scopes"] = json!(["user:inference", "user:sessions:claude_code"]);
    let scope = assert_error(
        app.create_as(&ci, body).await,
        StatusCode::BAD_REQUEST,
        "invalid_scope",
    )
    .await;
    let message = scope["message"].as_str().unwrap();
    assert!(message.contains("user:sessions:claude_code"), "{message}");
    assert!(!message.contains("carry user:inference"), "{message}");
    assert_error(
        app.create_as(&ci, asking(0)).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    assert_eq!(app.count("auth_requests").await, 0);

    let ok = app.create_as(&ci, asking(7 * 86_400)).await;
    assert_eq!(ok.status(), StatusCode::CREATED, "within every bound");
}

/// A router whose `oauth.long_lived_scopes` is wider than Anthropic allows: the strict fake
/// refuses the custom `expires_in` as the real server does, and the request fails cleanly.
#[tokio::test]
async fn the_provider_refuses_a_custom_lifetime_for_scopes_beyond_inference() {
    let app = spawn_claude_app_with(Options::default(), |c| {
        c.accounts = two_accounts();
        c.requests.max_token_lifetime_secs = YEAR;
        c.oauth
            .long_lived_scopes
            .push("user:sessions:claude_code".into());
    })
    .await;
    let (_, key) = app
        .enroll(json!({"name": "ci", "max_token_lifetime_secs": YEAR}))
        .await;
    let mut body = asking(YEAR);
    body["scopes"] = json!(["user:inference", "user:sessions:claude_code"]);
    let created = app.create_as_ok(&key, body).await;

    let callback = app.callback_url_for(&created.id, 1).await;
    app.get(&callback).await;

    let status = app.status_ok(&created).await;
    assert_eq!(status["status"], "error", "{status}");
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("Custom expires_in not allowed"),
        "{status}"
    );
}

#[tokio::test]
async fn a_client_can_be_given_and_denied_a_lifetime_maximum() {
    let app = app_allowing(YEAR).await;
    let (id, key) = app.enroll(json!({"name": "ci"})).await;
    let listed: Value = app.admin_get("/v1/clients").await;
    assert_eq!(listed["clients"][0]["max_token_lifetime_secs"], 0);
    assert_error(
        app.create_as(&key, asking(3600)).await,
        StatusCode::BAD_REQUEST,
        "lifetime_not_allowed",
    )
    .await;

    let patched = app
        .http
        .patch(app.url(&format!("/v1/clients/{id}")))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .json(&json!({"max_token_lifetime_secs": 86_400}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::OK);
    let patched: Value = patched.json().await.unwrap();
    assert_eq!(patched["max_token_lifetime_secs"], 86_400);
    assert_eq!(
        app.create_as(&key, asking(3600)).await.status(),
        StatusCode::CREATED
    );
    let too_long = app
        .admin_post(
            "/v1/clients",
            json!({"name": "x", "max_token_lifetime_secs": 400 * YEAR}),
        )
        .await;
    assert_error(too_long, StatusCode::BAD_REQUEST, "invalid_request").await;
}

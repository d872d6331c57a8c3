//! Enrolled clients: verified requests, their bounds, the approval policy, and accounts as
//! operators see them.

use fake_upstream::BrowserMode;
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_error, spawn_app_with, two_accounts, TestApp};

fn request_body(name: &str) -> Value {
    json!({"client_name": name, "hostname": "laptop"})
}

async fn accounts_app() -> TestApp {
    spawn_app_with(|c| c.accounts = two_accounts()).await
}

#[tokio::test]
async fn a_forged_client_name_does_not_pass_as_the_enrolled_client() {
    let app = accounts_app().await;
    let (alice_id, alice_key) = app.enroll(json!({"name": "alice"})).await;
    app.enroll(json!({"name": "bob"})).await;

    let forged = app.create(request_body("alice")).await;
    let genuine = app.create_as(&alice_key, request_body("mallory")).await;

    assert_eq!(forged.status(), StatusCode::CREATED);
    assert_eq!(genuine.status(), StatusCode::CREATED);
    let listed: Value = app.list("").await.json().await.unwrap();
    let requests = listed["requests"].as_array().unwrap();
    let genuine = &requests[0];
    let forged = &requests[1];
    assert_eq!(
        genuine["client_name"], "alice",
        "the enrolled name, not the body's"
    );
    assert_eq!(genuine["verified"], true);
    assert_eq!(genuine["client_id"], alice_id.as_str());
    assert_eq!(forged["client_name"], "alice");
    assert_eq!(forged["verified"], false);
    assert_eq!(forged["client_id"], Value::Null);

    // Only a verified create counts as the client's use.
    let clients: Value = app.admin_get("/v1/clients").await;
    let used = |name: &str| {
        clients["clients"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()["last_used_at"]
            .clone()
    };
    assert_eq!(used("alice"), genuine["created_at"]);
    assert_eq!(used("bob"), Value::Null);
}

#[tokio::test]
async fn wrong_rotated_and_disabled_keys_are_refused_and_never_taken_as_unverified() {
    let app = accounts_app().await;
    let (id, old_key) = app.enroll(json!({"name": "bob"})).await;

    let wrong = app.create_as("not-a-client-key", request_body("bob")).await;
    assert_error(wrong, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let rotated = app
        .admin_post(&format!("/v1/clients/{id}/rotate-key"), json!({}))
        .await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let new_key = rotated.json::<Value>().await.unwrap()["client_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let stale = app.create_as(&old_key, request_body("bob")).await;
    assert_error(stale, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_eq!(
        app.create_as(&new_key, request_body("bob")).await.status(),
        StatusCode::CREATED
    );
    app.admin_post(&format!("/v1/clients/{id}/disable"), json!({}))
        .await;
    let disabled = app.create_as(&new_key, request_body("bob")).await;
    assert_error(disabled, StatusCode::UNAUTHORIZED, "unauthorized").await;
    app.admin_post(&format!("/v1/clients/{id}/enable"), json!({}))
        .await;
    assert_eq!(
        app.create_as(&new_key, request_body("bob")).await.status(),
        StatusCode::CREATED
    );
    let listed: Value = app.admin_get("/v1/clients").await;
    let text = listed.to_string();
    assert!(
        !text.contains(&new_key) && !text.contains(&old_key),
        "no key listed"
    );
    assert!(!text.contains("key_hash"));
    assert_eq!(listed["clients"][0]["name"], "bob");
    let dup = app.admin_post("/v1/clients", json!({"name": "bob"})).await;
    assert_error(dup, StatusCode::CONFLICT, "client_exists").await;
    let pool = app.sql_pool().await;
    let actions: Vec<String> = sqlx::query_scalar("SELECT action FROM admin_events ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(actions, ["add", "rotate_key", "disable", "enable"]);
}

#[tokio::test]
async fn require_client_key_refuses_a_create_without_one() {
    let app = spawn_app_with(|c| c.requests.require_client_key = true).await;
    let (_, key) = app.enroll(json!({"name": "carol"})).await;

    let anonymous = app.create(request_body("carol")).await;

    assert_error(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_eq!(
        app.create_as(&key, request_body("carol")).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn a_clients_scopes_and_accounts_bound_what_it_may_ask_for_and_be_given() {
    let app = accounts_app().await;
    let (_, key) = app
        .enroll(json!({"name": "dave", "scopes": ["user:inference"], "accounts": [1]}))
        .await;

    let too_wide = app
        .create_as(
            &key,
            json!({"client_name": "d", "hostname": "h", "scopes": ["user:profile"]}),
        )
        .await;
    assert_error(too_wide, StatusCode::BAD_REQUEST, "invalid_request").await;
    let ok = app
        .create_as(
            &key,
            json!({"client_name": "d", "hostname": "h", "scopes": ["user:inference"]}),
        )
        .await;
    let id = ok.json::<Value>().await.unwrap()["request_id"]
        .as_str()
        .unwrap()
        .to_owned();

    assert_error(
        app.select(&id, 2).await,
        StatusCode::BAD_REQUEST,
        "account_not_allowed",
    )
    .await;
    assert_eq!(app.select(&id, 1).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_auto_approved_request_is_logged_in_by_the_policy_without_an_operator() {
    let app = accounts_app().await;
    app.fake.set_browser_mode(BrowserMode::AutoApprove);
    let (_, key) = app
        .enroll(json!({"name": "erin", "auto_approve": true}))
        .await;

    let created = app.create_as(&key, request_body("erin")).await;

    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["status"], "pending");
    let (id, poll) = (
        created["request_id"].as_str().unwrap(),
        created["poll_token"].as_str().unwrap(),
    );
    let status: Value = app.status(id, poll).await.json().await.unwrap();
    assert_eq!(status["status"], "approved");
    let select = app.audit_row(id, "select_account").await;
    assert_eq!(select["actor"], "policy");
}

#[tokio::test]
async fn a_failing_control_browser_leaves_an_auto_approved_request_for_an_operator() {
    let app = accounts_app().await;
    app.fake.set_browser_mode(BrowserMode::Fail);
    let (_, key) = app
        .enroll(json!({"name": "frank", "auto_approve": true}))
        .await;

    let created: Value = app
        .create_as(&key, request_body("frank"))
        .await
        .json()
        .await
        .unwrap();

    let id = created["request_id"].as_str().unwrap();
    assert_eq!(app.db_status(id).await, "pending");
    let hold = app.audit_row(id, "hold").await;
    assert_eq!(hold["actor"], "policy");
    assert!(
        hold["detail"].as_str().unwrap().contains("did not start"),
        "{hold}"
    );
    let accounts: Value = app.admin_get("/v1/accounts").await;
    let failed = &accounts["accounts"][0];
    assert!(failed["last_failure_at"].is_string(), "{accounts}");
}

#[tokio::test]
async fn the_least_recently_used_account_is_picked_and_a_paused_one_skipped() {
    let app = accounts_app().await;
    app.fake.set_browser_mode(BrowserMode::AutoApprove);
    let (_, key) = app
        .enroll(json!({"name": "gina", "auto_approve": true}))
        .await;
    let mut picked = Vec::new();
    for _ in 0..3 {
        let created: Value = app
            .create_as(&key, request_body("gina"))
            .await
            .json()
            .await
            .unwrap();
        let id = created["request_id"].as_str().unwrap();
        let status: Value = app
            .status(id, created["poll_token"].as_str().unwrap())
            .await
            .json()
            .await
            .unwrap();
        picked.push(status["account_id"].as_u64().unwrap());
    }
    assert_eq!(
        picked,
        [1, 2, 1],
        "never used first, then the oldest approval"
    );

    app.admin_post("/v1/accounts/1/pause", json!({})).await;
    let created: Value = app
        .create_as(&key, request_body("gina"))
        .await
        .json()
        .await
        .unwrap();
    let status: Value = app
        .status(
            created["request_id"].as_str().unwrap(),
            created["poll_token"].as_str().unwrap(),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["account_id"], 2, "account 1 is paused");
}

#[tokio::test]
async fn a_paused_account_stays_paused_across_a_restart_and_refuses_select_account() {
    let mut app = accounts_app().await;
    let paused = app.admin_post("/v1/accounts/2/pause", json!({})).await;
    assert_eq!(paused.status(), StatusCode::OK);

    app.restart().await;

    let created = app.create_ok().await;
    assert_error(
        app.select(&created.id, 2).await,
        StatusCode::CONFLICT,
        "account_paused",
    )
    .await;
    let accounts: Value = app.admin_get("/v1/accounts").await;
    assert_eq!(accounts["accounts"][1]["paused"], true);
    assert_eq!(accounts["accounts"][0]["paused"], false);
    app.admin_post("/v1/accounts/2/resume", json!({})).await;
    assert_eq!(app.select(&created.id, 2).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_open_limit_counts_per_client_under_racing_creates_and_others_cannot_lock_it_out() {
    let app = spawn_app_with(|c| c.limits.max_open_requests_per_client = 3).await;
    let (_, key) = app.enroll(json!({"name": "hank"})).await;
    // Others fill the hostname's budget, in the client's name.
    for _ in 0..3 {
        assert_eq!(
            app.create(request_body("hank")).await.status(),
            StatusCode::CREATED
        );
    }

    let racing = join_all((0..8).map(|_| app.create_as(&key, request_body("hank")))).await;

    let created = racing
        .iter()
        .filter(|r| r.status() == StatusCode::CREATED)
        .count();
    let limited = racing
        .iter()
        .filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((created, limited), (3, 5));
}

#[tokio::test]
async fn a_removed_clients_requests_stay_with_its_name() {
    let app = accounts_app().await;
    let (id, key) = app.enroll(json!({"name": "ivy"})).await;
    assert_eq!(
        app.create_as(&key, request_body("x")).await.status(),
        StatusCode::CREATED
    );

    let removed = app
        .http
        .delete(app.url(&format!("/v1/clients/{id}")))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();

    assert_eq!(removed.status(), StatusCode::OK);
    let listed: Value = app.list("").await.json().await.unwrap();
    assert_eq!(listed["requests"][0]["client_name"], "ivy");
    assert_eq!(listed["requests"][0]["client_id"], id.as_str());
    let gone = app.create_as(&key, request_body("x")).await;
    assert_error(gone, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

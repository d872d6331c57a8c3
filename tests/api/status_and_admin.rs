use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_error, spawn_app, spawn_app_with, ADMIN_TOKEN};

#[tokio::test]
async fn status_requires_the_requests_own_poll_token() {
    let app = spawn_app().await;
    let a = app.create_ok().await;
    let b = app.create_ok().await;

    let missing = app
        .http
        .get(app.url(&format!("/v1/token-requests/{}/status", a.id)))
        .send()
        .await
        .unwrap();
    assert_error(missing, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_error(
        app.status(&a.id, "wrong").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    assert_error(
        app.status(&a.id, &b.poll_token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    assert_error(
        app.status(&a.id, ADMIN_TOKEN).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;

    let body = app.status_ok(&a).await;
    assert_eq!(body["request_id"], a.id.as_str());
    assert_eq!(body["status"], "pending");
    assert_eq!(body["token"], Value::Null);
    assert_eq!(body["account_id"], Value::Null);
    assert_eq!(body["error"], Value::Null);
    assert_eq!(
        body["poll_interval_secs"],
        app.config.requests.poll_interval_secs
    );
}

#[tokio::test]
async fn status_of_an_unknown_id_is_404_and_of_a_non_uuid_is_400() {
    let app = spawn_app().await;
    let a = app.create_ok().await;

    let unknown = app
        .status("0b8f1f4e-7c1d-4e8b-9a53-2f2d3c4b5a69", &a.poll_token)
        .await;
    assert_error(unknown, StatusCode::NOT_FOUND, "request_not_found").await;
    assert_error(
        app.status("not-a-uuid", &a.poll_token).await,
        StatusCode::BAD_REQUEST,
        "invalid_request_id",
    )
    .await;
}

#[tokio::test]
async fn admin_endpoints_refuse_a_missing_or_wrong_token() {
    let app = spawn_app().await;
    let a = app.create_ok().await;
    let paths = [
        format!("/v1/token-requests/{}/select-account", a.id),
        format!("/v1/token-requests/{}/deny", a.id),
    ];
    for path in &paths {
        for token in [None, Some("wrong"), Some(a.poll_token.as_str())] {
            let mut request = app.http.post(app.url(path)).json(&json!({"account_id": 1}));
            if let Some(t) = token {
                request = request.bearer_auth(t);
            }
            assert_error(
                request.send().await.unwrap(),
                StatusCode::UNAUTHORIZED,
                "unauthorized",
            )
            .await;
        }
    }
    let list = app
        .http
        .get(app.url("/v1/token-requests"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_error(list, StatusCode::UNAUTHORIZED, "unauthorized").await;

    assert_eq!(app.db_status(&a.id).await, "pending");
    assert!(app.fake.opened().is_empty());
}

#[tokio::test]
async fn deny_ends_a_pending_request_and_a_second_deny_is_409() {
    let app = spawn_app().await;
    let a = app.create_ok().await;

    let response = app.deny(&a.id).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"request_id": a.id, "status": "denied"})
    );

    let again = assert_error(
        app.deny(&a.id).await,
        StatusCode::CONFLICT,
        "invalid_status",
    )
    .await;
    assert!(again["message"].as_str().unwrap().contains("denied"));
    assert_eq!(app.status_ok(&a).await["status"], "denied");
}

#[tokio::test]
async fn cancel_takes_the_poll_token_or_the_admin_token_and_nothing_else() {
    let app = spawn_app().await;
    let a = app.create_ok().await;
    let b = app.create_ok().await;

    assert_error(
        app.cancel(&a.id, &b.poll_token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    assert_eq!(app.db_status(&a.id).await, "pending");

    let by_client = app.cancel(&a.id, &a.poll_token).await;
    assert_eq!(by_client.status(), StatusCode::OK);
    assert_eq!(
        by_client.json::<Value>().await.unwrap()["status"],
        "cancelled"
    );
    let by_admin = app.cancel(&b.id, ADMIN_TOKEN).await;
    assert_eq!(by_admin.status(), StatusCode::OK);

    assert_error(
        app.cancel(&a.id, &a.poll_token).await,
        StatusCode::CONFLICT,
        "invalid_status",
    )
    .await;
    assert_eq!(app.db_status(&b.id).await, "cancelled");
}

#[tokio::test]
async fn deny_and_cancel_of_unknown_ids_are_404() {
    let app = spawn_app().await;
    let id = "0b8f1f4e-7c1d-4e8b-9a53-2f2d3c4b5a69";
    assert_error(
        app.deny(id).await,
        StatusCode::NOT_FOUND,
        "request_not_found",
    )
    .await;
    assert_error(
        app.cancel(id, ADMIN_TOKEN).await,
        StatusCode::NOT_FOUND,
        "request_not_found",
    )
    .await;
    assert_error(
        app.deny("nope").await,
        StatusCode::BAD_REQUEST,
        "invalid_request_id",
    )
    .await;
}

#[tokio::test]
async fn list_is_newest_first_filters_by_status_and_shows_no_secret() {
    let app = spawn_app().await;
    let first = app.create_ok().await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let second = app.create_ok().await;
    app.deny(&first.id).await;

    let all: Value = app.list("").await.json().await.unwrap();
    let ids: Vec<&str> = all["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second.id.as_str(), first.id.as_str()]);

    let denied: Value = app
        .list("?status=denied&limit=10")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(denied["requests"].as_array().unwrap().len(), 1);
    assert_eq!(denied["requests"][0]["request_id"], first.id.as_str());

    let one: Value = app.list("?limit=1").await.json().await.unwrap();
    assert_eq!(one["requests"].as_array().unwrap().len(), 1);

    let text = all.to_string();
    assert!(!text.contains(&first.poll_token) && !text.contains(&second.poll_token));
    let keys: Vec<&String> = all["requests"][0].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "account_email",
            "account_id",
            "client_id",
            "client_name",
            "created_at",
            "error",
            "expires_at",
            "hostname",
            "lifetime_secs",
            "organization_name",
            "peer_addr",
            "refresh_expires_at",
            "request_id",
            "scopes",
            "status",
            "updated_at",
            "verified"
        ]
    );
}

#[tokio::test]
async fn list_rejects_a_bad_status_or_limit_with_400() {
    let app = spawn_app().await;
    for query in [
        "?status=bogus",
        "?limit=0",
        "?limit=1001",
        "?limit=abc",
        "?other=1",
    ] {
        assert_error(
            app.list(query).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
    }
}

#[tokio::test]
async fn an_open_request_past_its_deadline_reads_as_expired_before_the_reaper_runs() {
    let app = spawn_app_with(|c| {
        c.requests.ttl_secs = 1;
        c.requests.poll_interval_secs = 1;
    })
    .await;
    let a = app.create_ok().await;

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    assert_eq!(app.status_ok(&a).await["status"], "expired");
    assert_eq!(
        app.db_status(&a.id).await,
        "pending",
        "the reaper has not run"
    );
    assert_error(
        app.deny(&a.id).await,
        StatusCode::CONFLICT,
        "invalid_status",
    )
    .await;
    assert_error(
        app.cancel(&a.id, &a.poll_token).await,
        StatusCode::CONFLICT,
        "invalid_status",
    )
    .await;
    assert_error(
        app.select(&a.id, 1).await,
        StatusCode::CONFLICT,
        "invalid_status",
    )
    .await;
    let listed: Value = app.list("").await.json().await.unwrap();
    assert_eq!(listed["requests"][0]["status"], "expired");
}

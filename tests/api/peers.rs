//! The client's address: the TCP peer, or behind a trusted proxy the client it forwarded
//! for; recorded with each request, shown to operators, and the key of per-address budgets.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_error, spawn_app_with, TestApp};

async fn create_from(app: &TestApp, forwarded_for: &str, host: &str) -> reqwest::Response {
    app.http
        .post(app.url("/v1/token-requests"))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"client_name": "c", "hostname": host}))
        .send()
        .await
        .unwrap()
}

async fn listed_peers(app: &TestApp) -> Vec<String> {
    let listed: Value = app.list("").await.json().await.unwrap();
    listed["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["peer_addr"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_a_configured_proxy() {
    let direct = spawn_app_with(|_| {}).await;
    let proxied = spawn_app_with(|c| c.limits.trusted_proxies = vec!["127.0.0.0/8".into()]).await;

    for app in [&direct, &proxied] {
        let created = create_from(app, "198.51.100.1, 203.0.113.9", "h").await;
        assert_eq!(created.status(), StatusCode::CREATED);
    }

    assert_eq!(
        listed_peers(&direct).await,
        ["127.0.0.1"],
        "a spoofed header is ignored"
    );
    assert_eq!(
        listed_peers(&proxied).await,
        ["203.0.113.9"],
        "the rightmost entry the trusted proxy appended"
    );
    let listed: Value = proxied.list("").await.json().await.unwrap();
    let id = listed["requests"][0]["request_id"].as_str().unwrap();
    let create = proxied.audit_row(id, "create").await;
    assert!(
        create["detail"].as_str().unwrap().contains("203.0.113.9"),
        "{create}"
    );
}

#[tokio::test]
async fn the_create_budget_counts_per_client_address_and_per_ipv6_64() {
    let app = spawn_app_with(|c| {
        c.limits.trusted_proxies = vec!["127.0.0.1".into()];
        c.limits.creates_per_minute_per_ip = 2;
    })
    .await;

    for (n, from) in ["2001:db8:1:2::1", "2001:db8:1:2:ffff::9"]
        .iter()
        .enumerate()
    {
        let host = format!("h{n}");
        assert_eq!(
            create_from(&app, from, &host).await.status(),
            StatusCode::CREATED
        );
    }
    let same_64 = create_from(&app, "2001:db8:1:2::77", "h3").await;
    let other_64 = create_from(&app, "2001:db8:1:3::1", "h4").await;
    let other_v4 = create_from(&app, "192.0.2.10", "h5").await;

    assert_error(same_64, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(other_64.status(), StatusCode::CREATED);
    assert_eq!(other_v4.status(), StatusCode::CREATED);
}

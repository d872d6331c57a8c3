//! Any router serves any step, and what one commits the others see at once.

use std::time::{Duration, Instant};

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{free_port, Cluster};
use fake_upstream::TokenFault;

#[tokio::test]
async fn a_request_created_on_a_approved_on_b_and_called_back_on_a_is_approved_on_b() {
    let cluster = Cluster::new().await;
    let (a_port, b_port) = (free_port(), free_port());
    // The provider redirects every login to A's callback, whichever router started it.
    let a = cluster.start("a", a_port, a_port, "", &[]).await;
    let b = cluster.start("b", b_port, a_port, "", &[]).await;

    let (id, poll) = cluster.create(&a, "laptop").await;
    let seen = cluster.status(&b, &id, &poll, 0).await;
    assert_eq!(
        seen["status"], "pending",
        "B serves A's request (and caches it)"
    );
    assert_eq!(cluster.select(&b, &id).await, StatusCode::OK);

    let approved = cluster.status(&b, &id, &poll, 10).await;
    assert_eq!(approved["status"], "approved", "{approved}");
    assert!(approved["token"]["access_token"].as_str().is_some());
    let actors: Vec<_> = cluster
        .audit(&a, &id)
        .await
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actors, ["create", "select_account", "approve"]);
}

/// A long poll waiting on A is woken by B's commit through the change channel: with the
/// fallback re-check 30 s away, only the announcement can answer it in time.
#[tokio::test]
async fn a_long_poll_on_a_is_answered_soon_after_a_commit_on_b() {
    let cluster = Cluster::new().await;
    let (a_port, b_port) = (free_port(), free_port());
    let a = cluster.start("a", a_port, a_port, "", &[]).await;
    let b = cluster.start("b", b_port, b_port, "", &[]).await;

    let mut latencies = Vec::new();
    for _ in 0..30 {
        let (id, poll) = cluster.create(&b, "laptop").await;
        let waiting = {
            let (cluster_http, base) = (cluster.http.clone(), a.base.clone());
            let (id, poll) = (id.clone(), poll.clone());
            tokio::spawn(async move {
                let answer = cluster_http
                    .get(format!("{base}/v1/token-requests/{id}/status?wait=20"))
                    .bearer_auth(poll)
                    .send()
                    .await
                    .unwrap();
                let answered = Instant::now();
                let body: serde_json::Value = answer.json().await.unwrap();
                (answered, body)
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let path = format!("/v1/token-requests/{id}/deny");
        assert_eq!(
            cluster.admin_post(&b, &path, json!({})).await,
            StatusCode::OK
        );
        let committed = Instant::now();
        let (answered, body) = waiting.await.unwrap();
        assert_eq!(body["status"], "denied");
        latencies.push(answered.saturating_duration_since(committed));
    }

    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!(
        "long poll on A after a commit on B: p50 {:?}, p99 {:?}, max {:?}",
        latencies[latencies.len() / 2],
        p99,
        latencies.last().unwrap()
    );
    assert!(
        *latencies.last().unwrap() < Duration::from_secs(2),
        "answered by the announcement, not the 30 s fallback: {latencies:?}"
    );
}

/// A has the request cached as pending; B denies it; A's very next poll says denied.
#[tokio::test]
async fn a_status_cached_on_a_is_never_served_after_b_changed_it() {
    let cluster = Cluster::new().await;
    let (a_port, b_port) = (free_port(), free_port());
    let a = cluster.start("a", a_port, a_port, "", &[]).await;
    let b = cluster.start("b", b_port, b_port, "", &[]).await;

    for _ in 0..20 {
        let (id, poll) = cluster.create(&a, "laptop").await;
        for _ in 0..3 {
            assert_eq!(cluster.status(&a, &id, &poll, 0).await["status"], "pending");
        }
        let path = format!("/v1/token-requests/{id}/deny");
        assert_eq!(
            cluster.admin_post(&b, &path, json!({})).await,
            StatusCode::OK
        );
        assert_eq!(cluster.status(&a, &id, &poll, 0).await["status"], "denied");
    }
}

/// Approve (select and the callback), deny and cancel at once, on different routers: one
/// outcome, and one terminal row in the audit trail.
#[tokio::test]
async fn approve_deny_and_cancel_racing_on_two_routers_have_exactly_one_winner() {
    let cluster = Cluster::new().await;
    let (a_port, b_port) = (free_port(), free_port());
    let a = cluster.start("a", a_port, a_port, "", &[]).await;
    let b = cluster.start("b", b_port, b_port, "", &[]).await;

    for round in 0..12 {
        let (id, poll) = cluster
            .create(if round % 2 == 0 { &a } else { &b }, "laptop")
            .await;
        let deny_path = format!("/v1/token-requests/{id}/deny");
        let cancel = cluster
            .http
            .post(format!("{}/v1/token-requests/{id}/cancel", b.base))
            .bearer_auth(&poll)
            .send();
        let (_, _, _) = tokio::join!(
            cluster.select(&a, &id),
            cluster.admin_post(&b, &deny_path, json!({})),
            cancel
        );

        let final_status = crate::harness::eventually(Duration::from_secs(10), || async {
            let status = cluster.status(&a, &id, &poll, 0).await["status"]
                .as_str()
                .unwrap()
                .to_owned();
            (status != "in_progress" && status != "pending").then_some(status)
        })
        .await
        .expect("the request ends");
        let terminal: Vec<_> = cluster
            .audit(&b, &id)
            .await
            .into_iter()
            .map(|e| e["to_status"].as_str().unwrap().to_owned())
            .filter(|s| ["approved", "denied", "cancelled", "error"].contains(&s.as_str()))
            .collect();
        assert_eq!(terminal, [final_status], "round {round}");
    }
}

/// Claude rotates refresh tokens: eight refreshes of one bundle over two routers make one
/// upstream call, and all eight get its tokens.
#[tokio::test]
async fn eight_refreshes_over_two_routers_make_one_upstream_call() {
    let cluster = Cluster::new().await;
    let (a_port, b_port) = (free_port(), free_port());
    let a = cluster.start("a", a_port, a_port, "", &[]).await;
    let b = cluster.start("b", b_port, b_port, "", &[]).await;
    let (id, poll) = cluster.create(&a, "laptop").await;
    assert_eq!(cluster.select(&a, &id).await, StatusCode::OK);
    let approved = cluster.status(&a, &id, &poll, 10).await;
    assert_eq!(approved["status"], "approved");
    let calls_before = cluster.fake.token_calls();
    // The provider takes half a second: all eight are in flight while the first refresh is.
    cluster
        .fake
        .set_token_fault(Some(TokenFault::Delay(Duration::from_millis(500))));

    let refreshes = (0..8).map(|i| {
        let router = if i % 2 == 0 { &a } else { &b };
        cluster
            .http
            .post(format!("{}/v1/token-requests/{id}/refresh", router.base))
            .bearer_auth(&poll)
            .send()
    });
    let answers = join_all(refreshes).await;

    let mut tokens = Vec::new();
    for answer in answers {
        let answer = answer.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        let body: serde_json::Value = answer.json().await.unwrap();
        tokens.push(body["access_token"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        cluster.fake.token_calls() - calls_before,
        1,
        "one upstream refresh"
    );
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "everyone got the one refresh's token");
    assert_ne!(
        Some(tokens[0].as_str()),
        approved["token"]["access_token"].as_str()
    );
}

#[tokio::test]
async fn the_open_request_limit_is_exact_across_routers_under_sixteen_racing_creates() {
    let cluster = Cluster::new().await;
    let (a_port, b_port) = (free_port(), free_port());
    let limit = [("AUTH_ROUTER_LIMITS__MAX_OPEN_REQUESTS_PER_CLIENT", "5")];
    let a = cluster.start("a", a_port, a_port, "", &limit).await;
    let b = cluster.start("b", b_port, b_port, "", &limit).await;

    let creates = (0..16).map(|i| {
        let router = if i % 2 == 0 { &a } else { &b };
        cluster
            .http
            .post(format!("{}/v1/token-requests", router.base))
            .json(&json!({"client_name": "ci", "hostname": "runner"}))
            .send()
    });
    let statuses: Vec<StatusCode> = join_all(creates)
        .await
        .into_iter()
        .map(|r| r.unwrap().status())
        .collect();

    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((created, limited), (5, 11), "{statuses:?}");
}

/// The per-address create budget is each router's own (docs/operations.md says what that
/// means behind a load balancer): one create a minute here, and there, for one address.
#[tokio::test]
async fn the_per_address_create_budget_is_kept_by_each_router() {
    let cluster = Cluster::new().await;
    let (a_port, b_port) = (free_port(), free_port());
    let budget = [("AUTH_ROUTER_LIMITS__CREATES_PER_MINUTE_PER_IP", "1")];
    let a = cluster.start("a", a_port, a_port, "", &budget).await;
    let b = cluster.start("b", b_port, b_port, "", &budget).await;
    let create = |router: &crate::harness::Router| {
        cluster
            .http
            .post(format!("{}/v1/token-requests", router.base))
            .json(&json!({"client_name": "c", "hostname": "h"}))
            .send()
    };

    assert_eq!(create(&a).await.unwrap().status(), StatusCode::CREATED);
    assert_eq!(
        create(&a).await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        create(&b).await.unwrap().status(),
        StatusCode::CREATED,
        "B's own budget"
    );
    assert_eq!(
        create(&b).await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

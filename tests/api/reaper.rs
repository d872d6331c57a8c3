use std::time::Duration;

use chrono::Duration as ChronoDuration;
use claude_auth_router::reaper::reap_once;
use reqwest::StatusCode;

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn reap_once_expires_only_open_requests_past_their_deadline() {
    let app = spawn_app().await;
    let db = app.db().await;
    let pending = app.create_ok().await;
    let in_progress = app.create_ok().await;
    app.select_and_capture(&in_progress.id, 1).await;
    let denied = app.create_ok().await;
    app.deny(&denied.id).await;
    let now = chrono::Utc::now();

    assert_eq!(reap_once(&db, now).await.unwrap(), 0, "nothing is due yet");
    let after_ttl = now + ChronoDuration::seconds(601);
    assert_eq!(reap_once(&db, after_ttl).await.unwrap(), 2);
    assert_eq!(
        reap_once(&db, after_ttl).await.unwrap(),
        0,
        "a second pass finds nothing"
    );

    assert_eq!(app.db_status(&pending.id).await, "expired");
    assert_eq!(app.db_status(&in_progress.id).await, "expired");
    assert_eq!(app.db_status(&denied.id).await, "denied");
    let pool = app.sql_pool().await;
    let verifiers: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM auth_requests WHERE pkce_verifier IS NOT NULL OR state_hash IS NOT NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(verifiers, 0, "expiry drops the flow secrets");
}

#[tokio::test]
async fn the_background_reaper_expires_stale_requests_on_its_interval() {
    let app = spawn_app_with(|c| {
        c.requests.ttl_secs = 1;
        c.requests.poll_interval_secs = 1;
        c.reaper.interval_secs = 1;
    })
    .await;
    let created = app.create_ok().await;

    let mut status = String::new();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = app.db_status(&created.id).await;
        if status == "expired" {
            break;
        }
    }

    assert_eq!(status, "expired");
    assert_eq!(app.status_ok(&created).await["status"], "expired");
}

#[tokio::test]
async fn the_reapers_scan_reads_only_open_rows_through_an_index() {
    let app = spawn_app().await;
    let pool = app.sql_pool().await;

    let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(
        "EXPLAIN QUERY PLAN UPDATE auth_requests SET status = 'expired'
         WHERE status IN ('pending', 'in_progress') AND expires_at <= '2030-01-01T00:00:00.000Z'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();

    let detail: Vec<&str> = plan.iter().map(|r| r.3.as_str()).collect();
    assert!(
        detail.iter().all(|d| d.contains("USING INDEX")),
        "no full scan: {detail:?}"
    );
    assert!(
        detail
            .iter()
            .any(|d| d.contains("auth_requests_open_by_expiry") || d.contains("(status=?)")),
        "{detail:?}"
    );
    assert_eq!(app.get(&app.url("/healthz")).await.status(), StatusCode::OK);
}

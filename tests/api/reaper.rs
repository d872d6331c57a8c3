use std::time::Duration;

use chrono::Duration as ChronoDuration;
use claude_auth_router::db::requests::{self, EXPIRE_CHUNK};
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
async fn the_reapers_statements_read_only_open_rows_through_an_index() {
    let app = spawn_app().await;
    let find = app.query_plan(requests::EXPIRE_AUDIT).await;
    assert!(
        find.iter().all(|d| d.contains("USING INDEX")),
        "no full scan: {find:?}"
    );
    // Only due rows: seeking the status index instead walks every open request.
    assert!(
        find.iter()
            .any(|d| d.contains("auth_requests_open_by_expiry (expires_at<?)")),
        "{find:?}"
    );
    let update = app.query_plan(requests::EXPIRE_UPDATE).await;
    assert!(
        update.iter().any(|d| d.contains("(id=?)")),
        "the update looks its row up by id, not through every open row: {update:?}"
    );
    assert_eq!(app.get(&app.url("/healthz")).await.status(), StatusCode::OK);
}

/// Retention runs on every reaper pass and usually finds nothing past its age. Each of its
/// deletes must find its rows through an index, because a scan holds the write lock for as
/// long as the table is long: the audit purge once scanned the audit trail on every pass,
/// and every write waited. The statements are the files
/// `query_file!` compiles.
#[tokio::test]
async fn every_retention_delete_finds_its_rows_through_an_index_without_a_scan_or_a_sort() {
    let app = spawn_app().await;
    for (sql, index) in [
        (
            include_str!("../../src/db/sql/purge_requests.sql"),
            "auth_requests_finished_by_updated",
        ),
        (
            include_str!("../../src/db/sql/purge_audit.sql"),
            "audit_events_by_time",
        ),
        (
            include_str!("../../src/db/sql/purge_deliveries.sql"),
            "webhook_deliveries_finished",
        ),
    ] {
        let plan = app.query_plan(sql).await;
        assert!(
            plan.iter()
                .any(|d| d.starts_with("SEARCH") && d.contains(index)),
            "{index} not searched: {plan:?}"
        );
        assert!(
            !plan
                .iter()
                .any(|d| d.starts_with("SCAN") || d.contains("TEMP B-TREE")),
            "a scan or a sort: {plan:?}"
        );
    }
}

#[tokio::test]
async fn a_backlog_larger_than_one_transaction_is_expired_in_full_with_one_audit_row_each() {
    let app = spawn_app().await;
    // The background reaper's first pass runs at startup; under load it could land after
    // the backlog is written and expire it first. Wait for it (the next is an hour away).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !app
        .get(&app.url("/metrics"))
        .await
        .text()
        .await
        .unwrap()
        .lines()
        .any(|l| l == "auth_router_reaper_runs_total 1")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no reaper pass at startup"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pool = app.sql_pool().await;
    let backlog = EXPIRE_CHUNK * 2 + 7;
    sqlx::query(
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?1)
         INSERT INTO auth_requests (id, client_name, hostname, scopes, status, created_at,
                                    updated_at, expires_at, poll_token_hash)
         SELECT printf('%08x-0000-4000-8000-000000000000', x), 'c', 'h', '', CASE x % 2 WHEN 0 THEN 'pending' ELSE 'in_progress' END,
                '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z',
                '2026-01-01T00:10:00.000Z', x'00'
         FROM n",
    )
    .bind(backlog)
    .execute(&pool)
    .await
    .unwrap();
    let open = app.create_ok().await;

    let expired = reap_once(&app.db().await, chrono::Utc::now())
        .await
        .unwrap();

    assert_eq!(expired, backlog as u64);
    let (rows, audited, from_in_progress): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM auth_requests WHERE status = 'expired'),
                (SELECT COUNT(DISTINCT request_id) FROM audit_events WHERE action = 'expire'),
                (SELECT COUNT(*) FROM audit_events
                 WHERE action = 'expire' AND from_status = 'in_progress')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((rows, audited), (backlog, backlog));
    // Odd x went in as in_progress.
    assert_eq!(
        from_in_progress,
        (backlog + 1) / 2,
        "each row's own old status"
    );
    assert_eq!(app.db_status(&open.id).await, "pending", "not yet due");
}

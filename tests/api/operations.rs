//! What the people running the router rely on: metrics, readiness, request ids, headers,
//! retention and backups.

use std::time::Duration;

use chrono::Utc;
use fake_upstream::BrowserMode;
use reqwest::StatusCode;

use crate::helpers::{assert_error, spawn_app, spawn_app_with};

#[tokio::test]
async fn metrics_after_a_flow_count_requests_statuses_and_upstream_calls() {
    let app = spawn_app().await;
    let approved = app.approved(1).await;
    app.fake.set_browser_mode(BrowserMode::Fail);
    let failed = app.create_ok().await;
    app.select(&failed.id, 1).await;

    let response = app.get(&app.url("/metrics")).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = response.text().await.unwrap();
    for line in [
        r#"auth_router_http_requests_total{method="POST",route="/v1/token-requests",status="201"} 2"#,
        r#"auth_router_http_requests_total{method="GET",route="/v1/token-requests/{id}/status",status="200"} 1"#,
        r#"auth_router_http_requests_total{method="POST",route="/v1/token-requests/{id}/select-account",status="502"} 1"#,
        r#"auth_router_token_requests{status="approved"} 1"#,
        r#"auth_router_token_requests{status="pending"} 1"#,
        r#"auth_router_upstream_calls_total{target="token_endpoint",outcome="ok"} 1"#,
        r#"auth_router_upstream_calls_total{target="control_browser",outcome="ok"} 1"#,
        r#"auth_router_upstream_calls_total{target="control_browser",outcome="failed"} 1"#,
        "auth_router_reaper_runs_total 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
    }
    assert!(text.contains("auth_router_http_request_duration_seconds_bucket"));
    assert!(
        !text.contains(&approved.id) && !text.contains(&approved.poll_token),
        "no ids or secrets in labels"
    );
}

#[tokio::test]
async fn invented_http_methods_share_one_metrics_label_instead_of_growing_the_registry() {
    let app = spawn_app().await;
    let invented: Vec<String> = (0..40).map(|i| format!("RANDOM{i}X")).collect();
    for method in &invented {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = app
            .http
            .request(method, app.url("/v1/token-requests"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    let text = app.get(&app.url("/metrics")).await.text().await.unwrap();

    assert!(
        !invented.iter().any(|m| text.contains(m.as_str())),
        "an invented method became a label"
    );
    let line = r#"auth_router_http_requests_total{method="other",route="/v1/token-requests",status="405"} 40"#;
    assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
}

#[tokio::test]
async fn readyz_needs_a_writable_database_while_healthz_only_needs_an_answer() {
    let app = spawn_app().await;
    assert_eq!(app.get(&app.url("/readyz")).await.status(), StatusCode::OK);
    let mut admin = app.hold_write_lock().await;

    let (readyz, healthz) = (app.url("/readyz"), app.url("/healthz"));
    let (ready, healthy) = tokio::join!(app.get(&readyz), app.get(&healthz));

    assert_error(ready, StatusCode::SERVICE_UNAVAILABLE, "busy").await;
    assert_eq!(healthy.status(), StatusCode::OK);
    sqlx::query("ROLLBACK").execute(&mut admin).await.unwrap();
    assert_eq!(app.get(&app.url("/readyz")).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn readyz_answers_503_when_the_reaper_has_not_completed_a_pass_in_three_intervals() {
    let app = spawn_app_with(|c| c.reaper.interval_secs = 1).await;
    assert_eq!(app.get(&app.url("/readyz")).await.status(), StatusCode::OK);
    let pool = app.sql_pool().await;
    // Every pass now fails (it cannot drop expired console sessions), while the database
    // itself stays writable.
    sqlx::query("ALTER TABLE admin_sessions RENAME TO admin_sessions_away")
        .execute(&pool)
        .await
        .unwrap();

    tokio::time::sleep(Duration::from_millis(4_500)).await;

    let stalled = app.get(&app.url("/readyz")).await;
    let body = assert_error(stalled, StatusCode::SERVICE_UNAVAILABLE, "not_ready").await;
    assert!(
        body["message"].as_str().unwrap().contains("reaper"),
        "{body}"
    );
    assert_eq!(app.get(&app.url("/healthz")).await.status(), StatusCode::OK);

    sqlx::query("ALTER TABLE admin_sessions_away RENAME TO admin_sessions")
        .execute(&pool)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        app.get(&app.url("/readyz")).await.status(),
        StatusCode::OK,
        "ready again after a completed pass"
    );
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_strict_headers() {
    let app = spawn_app().await;
    let created = app.create_ok().await;
    let callback = app.callback_url_for(&created.id, 1).await;

    let page = app.get(&callback).await;
    let echoed = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    let missing = app.get(&app.url("/nothing-here")).await;

    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let id = page.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    assert_eq!(echoed.headers()["x-request-id"], "trace-me-42");
    assert!(missing.headers().contains_key("x-request-id"));
}

/// Inserts `n` finished requests (with tokens and audit rows) last changed `age` ago.
async fn old_rows(pool: &sqlx::SqlitePool, n: usize, age: chrono::Duration, status: &str) {
    let at = (Utc::now() - age)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    let mut tx = pool.begin().await.unwrap();
    for _ in 0..n {
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO auth_requests (id, client_name, hostname, scopes, status, created_at, updated_at, expires_at, poll_token_hash)
             VALUES (?1, 'old', 'h', '', ?2, ?3, ?3, ?3, X'00')",
        )
        .bind(&id)
        .bind(status)
        .bind(&at)
        .execute(&mut *tx)
        .await
        .unwrap();
        if status == "approved" {
            sqlx::query("INSERT INTO token_bundles (request_id, access_token, token_type, scope, obtained_at) VALUES (?1, 'x', 'bearer', '', ?2)")
                .bind(&id)
                .bind(&at)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        sqlx::query("INSERT INTO audit_events (request_id, at, actor, action, to_status) VALUES (?1, ?2, 'admin', 'deny', ?3)")
            .bind(&id)
            .bind(&at)
            .bind(status)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn retention_deletes_old_finished_requests_their_tokens_and_old_audit_rows_in_batches_of_500()
{
    // A database of its own: a running app's reaper would purge these rows itself.
    let dir = tempfile::TempDir::new().unwrap();
    let url = format!("sqlite://{}", dir.path().join("retention.db").display());
    let db = claude_auth_router::db::Db::connect(&url).await.unwrap();
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    old_rows(&pool, 1200, chrono::Duration::days(31), "approved").await;
    old_rows(&pool, 3, chrono::Duration::days(29), "denied").await;
    old_rows(&pool, 1, chrono::Duration::days(400), "pending").await;
    let cfg = claude_auth_router::config::ReaperConfig {
        retain_terminal_secs: 30 * 24 * 3600,
        retain_audit_secs: 60 * 24 * 3600,
        ..Default::default()
    };

    let retained = claude_auth_router::reaper::purge_once(&db, Utc::now(), &cfg)
        .await
        .unwrap();

    assert_eq!(
        (retained.requests.rows, retained.requests.batches),
        (1200, 3)
    );
    assert_eq!(
        (retained.audit.rows, retained.audit.batches),
        (1, 1),
        "only the 400-day-old row"
    );
    let count = |table: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        count("auth_requests").await,
        4,
        "3 recent finished + 1 open, however old"
    );
    assert_eq!(
        count("token_bundles").await,
        0,
        "tokens went with their requests"
    );
    assert_eq!(
        count("audit_events").await,
        1203,
        "audit rows keep their own, longer retention"
    );
}

#[tokio::test]
async fn a_backup_taken_under_load_opens_and_holds_every_acknowledged_row() {
    let app = spawn_app().await;
    app.fake.set_browser_mode(BrowserMode::AutoApprove);
    let dir = tempfile::TempDir::new().unwrap();
    let out = dir.path().join("backup.db");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut acknowledged_before = Vec::new();
    for _ in 0..20 {
        acknowledged_before.push(app.approved(1).await.id);
    }

    let load = async {
        let mut made = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let created = app.create_ok().await;
            app.select(&created.id, 2).await;
            made += 1;
        }
        made
    };
    let take = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let result = claude_auth_router::ops::backup(&app.config, &out).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        result
    };
    let (made_during, backup) = tokio::join!(load, take);

    backup.expect("the backup succeeds while requests are being written");
    assert!(made_during > 0, "there was load during the backup");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&out).unwrap().permissions())
            & 0o777,
        0o600
    );
    let copy = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", out.display()))
        .await
        .unwrap();
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&copy)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    for id in &acknowledged_before {
        let (status, tokens): (String, i64) = sqlx::query_as(
            "SELECT r.status, (SELECT COUNT(*) FROM token_bundles t WHERE t.request_id = r.id) FROM auth_requests r WHERE r.id = ?",
        )
        .bind(id)
        .fetch_one(&copy)
        .await
        .unwrap();
        assert_eq!((status.as_str(), tokens), ("approved", 1), "{id}");
    }
    let exists = claude_auth_router::ops::backup(&app.config, &out)
        .await
        .unwrap_err();
    assert!(format!("{exists:#}").contains("must not exist"));
}

/// Sets a request's `updated_at` and its bundle's `obtained_at` to `days` ago.
async fn age_request(pool: &sqlx::SqlitePool, id: &str, updated_days: i64, obtained_days: i64) {
    let ago = |days| {
        (Utc::now() - chrono::Duration::days(days))
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string()
    };
    sqlx::query("UPDATE auth_requests SET updated_at = ? WHERE id = ?")
        .bind(ago(updated_days))
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("UPDATE token_bundles SET obtained_at = ? WHERE request_id = ?")
        .bind(ago(obtained_days))
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn retention_keeps_an_approved_request_whose_tokens_were_refreshed_recently() {
    let app = spawn_app().await;
    let approved = app.approved(1).await;
    let pool = app.sql_pool().await;
    let cfg = app.config.reaper.clone();
    age_request(&pool, &approved.id, 40, 1).await;

    let kept = claude_auth_router::reaper::purge_once(&app.app_db(), Utc::now(), &cfg)
        .await
        .unwrap();

    assert_eq!(kept.requests.rows, 0, "refreshed yesterday: in use");
    assert_eq!(app.status_ok(&approved).await["status"], "approved");
    age_request(&pool, &approved.id, 40, 40).await;
    let purged = claude_auth_router::reaper::purge_once(&app.app_db(), Utc::now(), &cfg)
        .await
        .unwrap();
    assert_eq!(purged.requests.rows, 1, "no token activity for 40 days");
}

#[tokio::test]
async fn a_request_deleted_by_retention_is_not_served_from_the_cache() {
    let app = spawn_app().await;
    let approved = app.approved(1).await;
    assert_eq!(app.status_ok(&approved).await["status"], "approved"); // now cached
    let pool = app.sql_pool().await;
    age_request(&pool, &approved.id, 40, 40).await;

    claude_auth_router::reaper::purge_once(&app.app_db(), Utc::now(), &app.config.reaper)
        .await
        .unwrap();

    assert_error(
        app.status(&approved.id, &approved.poll_token).await,
        StatusCode::NOT_FOUND,
        "request_not_found",
    )
    .await;
}
